"""Compatibility fixes applied when ``rtkd`` is imported.

1. Safe checkpoint loading on torch >= 2.6 (below).
2. mmseg 1.2.2's class-weighted cross-entropy crashing on ignored pixels
   (:func:`patch_weighted_cross_entropy`).
3. ``num_workers=0`` with ``persistent_workers=True`` (the CamVid base's setting), which torch's
   ``DataLoader`` rejects (:func:`patch_persistent_workers`).
4. setuptools' ``pkg_resources is deprecated`` warning, printed again by every mmengine config
   load (:func:`silence_pkg_resources_warning`).
5. a distiller checkpoint given to a student config, or a student checkpoint given to a
   distillation recipe (:func:`patch_checkpoint_kinds`).
6. a truncated / corrupted checkpoint: an error that names it, and ``--resume`` falling back to
   the newest older checkpoint that reads (:func:`patch_checkpoint_reading`).


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
``tools/model_converters/make_safe_checkpoint.py`` rewrites such a file (for a checkpoint you
trust).
"""
from __future__ import annotations

import codecs
import functools
import os.path as osp
import warnings

import numpy as np
import torch

#: Start of setuptools' warning on ``import pkg_resources`` (setuptools >= 67.5; a UserWarning
#: from 80.9 on). mmengine's ``is_installed`` re-imports ``pkg_resources`` on every config load
#: with a ``mmseg::`` style base, and mim imports it at start-up.
PKG_RESOURCES_WARNING = r'pkg_resources is deprecated as an API'


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

    def cross_entropy(pred,
                      label,
                      weight=None,
                      class_weight=None,
                      reduction='mean',
                      avg_factor=None,
                      ignore_index=-100,
                      avg_non_ignore=False):
        if class_weight is not None and avg_factor is None and reduction == 'mean':
            valid = label != ignore_index
            avg_factor = class_weight[label[valid]].sum()
        return original(
            pred,
            label,
            weight=weight,
            class_weight=class_weight,
            reduction=reduction,
            avg_factor=avg_factor,
            ignore_index=ignore_index,
            avg_non_ignore=avg_non_ignore)

    cross_entropy._rtkd_patched = True
    cross_entropy.__doc__ = original.__doc__
    ce_mod.cross_entropy = cross_entropy


def _drop_idle_persistent_workers(build_dataloader):
    """Wrap ``build_dataloader`` to drop ``persistent_workers`` when there are no workers."""

    @functools.wraps(build_dataloader)
    def wrapper(dataloader, *args, **kwargs):
        if isinstance(dataloader, dict) and dataloader.get('persistent_workers') and \
                not dataloader.get('num_workers'):
            dataloader = dict(dataloader, persistent_workers=False)
        return build_dataloader(dataloader, *args, **kwargs)

    wrapper._rtkd_patched = True
    return wrapper


def patch_persistent_workers() -> None:
    """Let ``num_workers=0`` run with a config that sets ``persistent_workers=True``.

    torch's ``DataLoader`` raises ``persistent_workers option needs num_workers > 0``, so every
    small run (debugging, tests, ``--cfg-options train_dataloader.num_workers=0``) had to override
    both keys. With no worker processes there is nothing to keep alive, so the runners'
    ``build_dataloader`` (mmengine's ``Runner`` and ``FlexibleRunner``, used by ``tools/train.py``,
    ``tools/test.py`` and ``mim train`` / ``mim test`` alike) now builds such a loader with
    ``persistent_workers=False``; with workers the setting is passed on unchanged.
    """
    from mmengine.runner import Runner
    runners = [Runner]
    try:
        from mmengine.runner import FlexibleRunner
        runners.append(FlexibleRunner)
    except ImportError:  # mmengine < 0.8
        pass
    for cls in runners:
        original = cls.__dict__['build_dataloader'].__func__
        if not getattr(original, '_rtkd_patched', False):
            cls.build_dataloader = staticmethod(_drop_idle_persistent_workers(original))


def silence_pkg_resources_warning() -> None:
    """Hide setuptools' ``pkg_resources is deprecated`` warning and no other warning.

    It is about mmengine's and mim's own use of ``pkg_resources`` (nothing a user of rtkd can
    change). The filter takes effect once ``rtkd`` is imported (``tools/train.py`` and
    ``tools/test.py`` import it first); the pin ``setuptools<80.9`` in
    ``requirements/constraints.txt`` keeps it out of processes that import rtkd later (``mim``).
    """
    warnings.filterwarnings('ignore', message=PKG_RESOURCES_WARNING)


def patch_checkpoint_kinds() -> None:
    """Load a distiller checkpoint into a student config, and a student checkpoint into a recipe.

    ``mim test RECIPE --checkpoint student_latest.pth`` and ``mim test STUDENT_CFG --checkpoint
    iter_N.pth`` used to load nothing that matched (one missing-keys dump) and then report the
    mIoU of a random network. mmengine's ``_load_checkpoint_to_model`` (used by ``load_from``,
    ``--resume``, ``mim test`` and ``load_checkpoint``) now applies
    :func:`rtkd.distill.export.adapt_checkpoint_kind` and says so in one log line.
    """
    import mmengine.runner.checkpoint as ckpt_mod
    import mmengine.runner.runner as runner_mod
    original = ckpt_mod._load_checkpoint_to_model
    if getattr(original, '_rtkd_patched', False):
        return

    @functools.wraps(original)
    def load_to_model(model,
                      checkpoint,
                      strict=False,
                      logger=None,
                      revise_keys=[(r'^module\.', '')]):
        import re
        from collections import OrderedDict

        from mmengine.logging import print_log

        from rtkd.distill.export import adapt_checkpoint_kind
        sd = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
        if isinstance(sd, dict):
            for p, r in revise_keys:
                sd = OrderedDict((re.sub(p, r, k), v) for k, v in sd.items())
            new_sd, what = adapt_checkpoint_kind(model, sd)
            if what is not None:
                print_log(f'checkpoint: {what}.', logger='current')
                checkpoint = dict(checkpoint, state_dict=new_sd)
                revise_keys = []
        return original(model, checkpoint, strict, logger, revise_keys)

    load_to_model._rtkd_patched = True
    ckpt_mod._load_checkpoint_to_model = load_to_model
    runner_mod._load_checkpoint_to_model = load_to_model


class CheckpointReadError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, corrupted, not a checkpoint)."""


def patch_checkpoint_reading() -> None:
    """Name the file when a checkpoint cannot be read; ``--resume`` falls back to an older one.

    mmengine's ``_load_checkpoint`` lets torch's ``PytorchStreamReader failed ...`` through
    without the path. It now raises :class:`CheckpointReadError` naming the file. ``Runner.resume``
    given a file it cannot read (the latest checkpoint of an interrupted run, cut short while being
    written) logs that and resumes from the newest older ``iter_*.pth`` / ``epoch_*.pth`` in the
    same folder that reads, or stops with the list of what it tried.
    """
    import glob
    import os.path as osp
    import re

    import mmengine.runner.checkpoint as ckpt_mod
    import mmengine.runner.runner as runner_mod
    from mmengine.runner import Runner
    original = ckpt_mod._load_checkpoint
    if getattr(original, '_rtkd_patched', False):
        return

    @functools.wraps(original)
    def load(filename, map_location=None, logger=None):
        try:
            return original(filename, map_location=map_location, logger=logger)
        except (FileNotFoundError, CheckpointReadError):
            raise
        except Exception as e:  # noqa: BLE001  (torch raises RuntimeError, EOFError, pickle errors)
            if isinstance(filename, str) and osp.isfile(filename) and \
                    not isinstance(e, (KeyError, AttributeError)) and \
                    'Weights only load failed' not in str(e):
                raise CheckpointReadError(
                    f'cannot read checkpoint {filename!r} ({type(e).__name__}: '
                    f'{str(e).splitlines()[0] if str(e) else e!r}); the file is truncated or '
                    'corrupted: use another checkpoint (an older iter_*.pth) or rewrite it.') from e
            raise

    load._rtkd_patched = True
    ckpt_mod._load_checkpoint = load
    runner_mod._load_checkpoint = load

    resume = Runner.resume

    @functools.wraps(resume)
    def resume_with_fallback(self, filename, *args, **kwargs):
        try:
            return resume(self, filename, *args, **kwargs)
        except CheckpointReadError as first:
            folder = osp.dirname(osp.abspath(filename))
            num = re.search(r'(\d+)\.pth$', filename)
            limit = int(num.group(1)) if num else float('inf')
            older = []
            for path in glob.glob(osp.join(folder, '*.pth')):
                m = re.match(r'^(iter|epoch)_(\d+)\.pth$', osp.basename(path))
                if m and int(m.group(2)) < limit:
                    older.append((int(m.group(2)), path))
            for _, path in sorted(older, reverse=True):
                self.logger.warning(f'{first} Resuming from the previous checkpoint {path!r}.')
                try:
                    return resume(self, path, *args, **kwargs)
                except CheckpointReadError as e:
                    first = e
            raise CheckpointReadError(
                f'{first} No older readable iter_*/epoch_* checkpoint in {folder!r} to resume '
                'from; start the run again without --resume.') from first

    Runner.resume = resume_with_fallback


def _holds_training_state(path: str) -> bool:
    """Whether a checkpoint can be resumed from (mmengine writes ``message_hub`` for that).

    Args:
        path (str): a checkpoint path or URL.

    Returns:
        bool: True for a training checkpoint, a URL or a file this check cannot read (mmengine
        then decides, and names the file if it cannot be read either); False for a weights-only
        file (``state_dict`` / ``meta``, as initial weights and released models are).
    """
    import os.path as osp
    if not isinstance(path, str) or '://' in path or not osp.isfile(path):
        return True
    try:
        ckpt = torch.load(path, map_location='cpu', mmap=True, weights_only=True)
    except Exception:  # noqa: BLE001  (not readable here: let mmengine report it)
        return True
    return not isinstance(ckpt, dict) or 'message_hub' in ckpt


def patch_resume_with_initial_weights() -> None:
    """``--resume`` of a config whose ``load_from`` is initial weights resumes the run itself.

    mmengine reads ``resume=True`` with a ``load_from`` as "resume from that file", so a
    continuation config (``load_from`` = weights of an earlier training, e.g. a teacher trained
    further) cannot be resumed after an interruption: mmengine tries to restore the training
    state from the weights file and stops with ``KeyError: 'message_hub'``. When ``load_from``
    holds weights only, ``--resume`` now continues from the latest checkpoint of the work dir
    (``load_from`` initialised the first run, and the resumed state replaces it anyway), or,
    when the work dir has none yet, starts the run from ``load_from`` as if ``--resume`` had not
    been given. A ``load_from`` that is itself a training checkpoint keeps mmengine's meaning.
    A local ``load_from`` that does not exist (weights moved, another machine) is not needed to
    resume: the latest checkpoint of the work dir is used; with none, mmengine reports it.
    """
    from mmengine.runner import Runner, find_latest_checkpoint
    original = Runner.load_or_resume
    if getattr(original, '_rtkd_patched', False):
        return

    @functools.wraps(original)
    def load_or_resume(self):
        init = self._load_from
        if self._has_loaded or not self._resume or init is None:
            return original(self)
        absent = '://' not in init and not osp.exists(init)  # a local file not on this machine
        if absent or not _holds_training_state(init):  # initial weights, not a run's state
            latest = find_latest_checkpoint(self.work_dir)
            what = 'does not exist here' if absent else 'holds weights only'
            if latest is not None:
                self.logger.info(f'load_from {init!r} {what} (it initialised the first run): '
                                 f'resuming from {latest!r}.')
                self._load_from = latest
            elif not absent:  # an absent file with nothing to resume: mmengine reports it
                self.logger.info(f'no checkpoint in {self.work_dir!r} to resume from: starting '
                                 f'from the weights in load_from {init!r}.')
                self._resume = False
        return original(self)

    load_or_resume._rtkd_patched = True
    Runner.load_or_resume = load_or_resume


register_safe_globals()
patch_history_buffer()
patch_weighted_cross_entropy()
patch_persistent_workers()
silence_pkg_resources_warning()
patch_checkpoint_kinds()
patch_checkpoint_reading()
patch_resume_with_initial_weights()
