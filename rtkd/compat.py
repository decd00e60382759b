"""Compatibility fixes applied when ``rtkd`` is imported.

1. Safe checkpoint loading on torch >= 2.6 (below).
2. mmseg 1.2.2's class-weighted cross-entropy crashing on ignored pixels
   (:func:`patch_weighted_cross_entropy`).


torch >= 2.6 loads checkpoints with ``weights_only=True``. mmengine 0.10.7 writes its message hub
(``HistoryBuffer`` objects holding numpy arrays) into every checkpoint, so ``--resume``,
``load_from`` and ``mim test --checkpoint`` fail with ``Weights only load failed``. Instead of
turning the safe loader off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``), we allow-list exactly the
classes mmengine itself writes, so checkpoints from untrusted sources stay safe to load.

mmengine's ``HistoryBuffer.__getstate__`` also pickles its class-level registry of statistics
methods (``min``/``max``/``mean``/``current``), which the pickle expresses as
``getattr(HistoryBuffer, 'min')``. Allow-listing ``getattr`` would make the safe loader unsafe, so
instead buffers are pickled without that registry: it is class-level and rebuilt on import, and
mmengine's ``__setstate__`` already treats it as optional. Checkpoints written by a plain mmengine
process (without rtkd imported) still carry it; loading one of those gives torch's error, see
``tools/model_converters/make_safe_checkpoint.py`` rewrites such a file (for a checkpoint you trust).
"""
from __future__ import annotations

import codecs

import numpy as np
import torch


def _safe_globals() -> list:
    from mmengine.logging.history_buffer import HistoryBuffer

    found = [HistoryBuffer, codecs.encode, np.dtype, np.ndarray]
    # numpy moved its internals between 1.x and 2.x; allow-list whichever exists.
    for mod_name, attr in [('numpy.core.multiarray', '_reconstruct'),
                           ('numpy._core.multiarray', '_reconstruct'),
                           ('numpy.core.multiarray', 'scalar'),
                           ('numpy._core.multiarray', 'scalar')]:
        try:
            mod = __import__(mod_name, fromlist=[attr])
            found.append(getattr(mod, attr))
        except (ImportError, AttributeError):
            pass
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # numpy >= 1.25 pickles dtypes as np.dtypes.Float64DType etc.
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return found


def _history_buffer_getstate(self) -> dict:
    """Pickle a ``HistoryBuffer`` without its (class-level) statistics-method registry."""
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def patch_history_buffer() -> None:
    """Make mmengine message hubs pickle into checkpoints that torch's safe loader accepts."""
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate


def register_safe_globals() -> None:
    """Allow mmengine's own checkpoint contents under torch's ``weights_only`` loader."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 has no safe-globals list and loads everything anyway
        add(_safe_globals())


def patch_weighted_cross_entropy() -> None:
    """Fix mmseg 1.2.2's class-weighted ``cross_entropy`` on ignored pixels.

    With ``class_weight`` and ``reduction='mean'`` mmseg computes its averaging factor as
    ``class_weight[label]`` for *every* pixel, so an ignored label (255) raises
    ``IndexError: index 255 is out of bounds``. We compute the factor the way
    ``torch.nn.functional.cross_entropy`` does for a weighted mean, the sum of the class weights
    of the non-ignored pixels, and pass it in as ``avg_factor`` (so mmseg's faulty branch is not
    reached). Everything else is mmseg's own code.
    """
    import mmseg.models.losses.cross_entropy_loss as ce_mod
    original = ce_mod.cross_entropy
    if getattr(original, '_rtkd_patched', False):
        return

    def cross_entropy(pred, label, weight=None, class_weight=None, reduction='mean',
                      avg_factor=None, ignore_index=-100, avg_non_ignore=False):
        if class_weight is not None and avg_factor is None and reduction == 'mean':
            valid = label != ignore_index
            avg_factor = class_weight[label[valid]].sum()
        return original(pred, label, weight=weight, class_weight=class_weight,
                        reduction=reduction, avg_factor=avg_factor, ignore_index=ignore_index,
                        avg_non_ignore=avg_non_ignore)

    cross_entropy._rtkd_patched = True
    cross_entropy.__doc__ = original.__doc__
    ce_mod.cross_entropy = cross_entropy


register_safe_globals()
patch_history_buffer()
patch_weighted_cross_entropy()
