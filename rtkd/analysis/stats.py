"""Build any mmseg segmentor from a config and measure it: parameters, FLOPs, CPU latency.

What is measured (the same definitions are printed by ``tools/analysis/model_stats.py``):

* **Forward** -- :class:`TensorForward`: ``segmentor(x, mode='tensor')``, i.e. backbone (+ neck) +
  decode head, returning the logits at the decode head's resolution (no data pre-processor, no
  resize to the input size, no argmax). Auxiliary heads do not run in this forward.
* **Parameters** -- ``total``: every parameter of the built model (auxiliary heads included);
  ``inference``: the parameters that the tensor forward actually uses, found with autograd (so an
  auxiliary head is excluded wherever a network keeps it); ``aux_head``: parameters under
  ``auxiliary_head``.
* **FLOPs** -- mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (the fvcore counter) on the
  tensor forward; fvcore convention: one fused multiply-add counts as one FLOP.
* **Latency** -- wall-clock time of the tensor forward in eval mode under ``torch.no_grad()``,
  timed round-robin across all models (see :func:`time_round_robin`).
"""
from __future__ import annotations

import re
import time
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

REFERENCE_CONFIG = 'mmseg::_base_/models/fast_scnn.py'
"""mmseg's stock Fast-SCNN model config, the latency reference of ``model_stats.py``."""


class TensorForward(nn.Module):
    """Wrap a segmentor so that ``module(x)`` is its ``mode='tensor'`` forward.

    Args:
        segmentor (nn.Module): an mmseg segmentor (``EncoderDecoder`` or alike).
        resize_to_input (bool): if True, bilinearly resize the logits to the input's ``H x W``
            (``align_corners`` taken from the segmentor); if False (default) return the logits at
            the decode head's resolution, exactly what ``mode='tensor'`` gives.
    """

    def __init__(self, segmentor: nn.Module, resize_to_input: bool = False) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.resize_to_input = resize_to_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the tensor forward.

        Args:
            x (Tensor): images ``(N, 3, H, W)``, already normalised.

        Returns:
            Tensor: logits ``(N, num_classes, h, w)``.
        """
        out = self.segmentor(x, mode='tensor')
        if isinstance(out, (list, tuple)):
            if len(out) != 1:
                raise ValueError(f'{type(self.segmentor).__name__}(mode="tensor") returned '
                                 f'{len(out)} outputs; TensorForward needs a single logits tensor.')
            out = out[0]
        if self.resize_to_input and out.shape[2:] != x.shape[2:]:
            out = F.interpolate(out, size=x.shape[2:], mode='bilinear',
                                align_corners=bool(getattr(self.segmentor, 'align_corners', False)))
        return out


def load_config(config):
    """Load a config from a local path, a ``pkg::path`` (e.g. ``mmseg::_base_/models/x.py``) or a
    :class:`mmengine.Config`.

    Args:
        config (str | Config): what to load.

    Returns:
        Config: the loaded config (``custom_imports`` already imported).
    """
    import os.path as osp

    from mmengine.config import Config
    if isinstance(config, Config):
        return config
    if not isinstance(config, str):
        raise TypeError('config must be a path or an mmengine Config, got '
                        f'{type(config).__name__}.')
    if '::' in config and not osp.isfile(config):
        from mmengine.hub import get_config
        return get_config(config)
    from rtkd.utils import check_file
    check_file(config, 'config')
    return Config.fromfile(config)


def build_segmentor(config, checkpoint: Optional[str] = None,
                    cfg_options: Optional[dict] = None, seed: int = 0) -> nn.Module:
    """Build the segmentor of a config on CPU, in eval mode, ready to be measured or exported.

    SyncBN layers are converted to BN (they cannot run on CPU); weights are random (seeded, no
    pretrained download) unless ``checkpoint`` is given.

    Args:
        config (str | Config): config path, ``pkg::path`` or a loaded Config.
        checkpoint (str, optional): checkpoint to load (see :func:`load_weights`).
        cfg_options (dict, optional): overrides in ``merge_from_dict`` form.
        seed (int): seed of the random initialisation.

    Returns:
        nn.Module: the segmentor (an ``mmseg.models.segmentors.BaseSegmentor``).
    """
    import mmseg.models  # noqa: F401  (registers mmseg's modules)
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.models.segmentors import BaseSegmentor
    from mmseg.registry import MODELS

    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'config {config!r} has no `model`; pass a full segmentor config.')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model.copy()
    if 'pretrained' in model_cfg:
        model_cfg['pretrained'] = None
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    if not isinstance(model, BaseSegmentor):
        raise ValueError(
            f'config {config!r} builds a {type(model).__name__}, not an mmseg segmentor; pass a '
            'segmentor config (for a distillation recipe, pass its student config).')
    model = revert_sync_batchnorm(model)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    model.cfg = cfg
    return model.eval()


def load_weights(model: nn.Module, checkpoint: str) -> dict:
    """Load a checkpoint into ``model`` and fail if any model weight is missing from it.

    Accepts a normal mmseg/mmengine checkpoint (``{'state_dict': ...}``), a bare state dict, a
    DDP one (``module.`` prefix) or a distiller one (``student.`` prefix: the student is taken,
    anything else in it is reported and ignored). Loaded with
    :func:`mmengine.runner.load_checkpoint` on CPU.

    Args:
        model (nn.Module): the model.
        checkpoint (str): local path or URL.

    Returns:
        dict: the loaded checkpoint.
    """
    from mmengine.runner import load_checkpoint

    from rtkd.utils import check_file
    check_file(checkpoint, 'checkpoint')
    revise = [(r'^module\.', ''), (r'^student\.', '')]
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=False,
                           revise_keys=revise)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    keys = set()
    for k in state:
        for pattern, repl in revise:
            k = re.sub(pattern, repl, k)
        keys.add(k)
    missing = [k for k in model.state_dict() if k not in keys]
    if missing:
        raise ValueError(
            f'checkpoint {checkpoint!r} does not fit this config: {len(missing)} of the model\'s '
            f'{len(model.state_dict())} weights are missing from it (e.g. {missing[:3]}); pass a '
            'checkpoint trained with this config.')
    return ckpt


def num_classes_of(model: nn.Module) -> Optional[int]:
    """Number of output classes of a segmentor's (last) decode head, or None if unknown."""
    head = getattr(model, 'decode_head', None)
    if isinstance(head, nn.ModuleList):
        head = head[-1]
    return getattr(head, 'out_channels', getattr(head, 'num_classes', None))


def count_params(model: nn.Module, x: torch.Tensor) -> Dict[str, int]:
    """Count parameters: all, those used by the tensor forward, those of ``auxiliary_head``.

    Args:
        model (nn.Module): a segmentor.
        x (Tensor): an example input ``(1, 3, H, W)``; one forward + autograd pass is run.

    Returns:
        dict: ``total``, ``inference`` and ``aux_head`` parameter counts.
    """
    params = list(dict.fromkeys(model.parameters()))  # unique, ordered
    total = sum(p.numel() for p in params)
    aux = getattr(model, 'auxiliary_head', None)
    aux_n = sum(p.numel() for p in aux.parameters()) if isinstance(aux, nn.Module) else 0
    trainable = [p for p in params if p.requires_grad]
    frozen = sum(p.numel() for p in params if not p.requires_grad)
    used = 0
    with torch.enable_grad():
        out = TensorForward(model)(x)
        if trainable and out.requires_grad:
            grads = torch.autograd.grad(out.float().sum(), trainable, allow_unused=True)
            used = sum(p.numel() for p, g in zip(trainable, grads) if g is not None)
    # Frozen parameters cannot be traced by autograd; count them as used unless in the aux head.
    aux_frozen = sum(p.numel() for p in aux.parameters()
                     if not p.requires_grad) if isinstance(aux, nn.Module) else 0
    return dict(total=total, inference=used + frozen - aux_frozen, aux_head=aux_n)


def count_flops(model: nn.Module, x: torch.Tensor) -> Tuple[int, Counter]:
    """Count the FLOPs of the tensor forward with mmengine's FlopAnalyzer (fvcore convention).

    Args:
        model (nn.Module): a segmentor.
        x (Tensor): the input ``(N, 3, H, W)``.

    Returns:
        tuple: total FLOPs (one multiply-add = 1) and a Counter of operators the counter skipped.
    """
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(TensorForward(model), (x, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        total = analyzer.total()
    return int(total), Counter(analyzer.unsupported_ops())


def time_round_robin(fns: Dict[str, Callable[[], object]], warmup: int = 3,
                     repeat: int = 7) -> Dict[str, List[float]]:
    """Time several callables fairly: warm each up, then run them in turns ``repeat`` times.

    Running the models in turns (round ``r`` times every model once) means slow phases of a shared
    machine hit all models alike, so latency *ratios* stay meaningful even when absolute times
    drift.

    Args:
        fns (dict): name -> zero-argument callable (e.g. a closure over a model and an input).
        warmup (int): untimed calls per callable before timing.
        repeat (int): timed calls per callable.

    Returns:
        dict: name -> list of ``repeat`` wall-clock times in seconds (round order).
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f'need repeat >= 1 and warmup >= 0, got repeat={repeat}, '
                         f'warmup={warmup}.')
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def paired_ratio(times: Sequence[float], ref_times: Sequence[float]) -> float:
    """Median over rounds of ``times[r] / ref_times[r]`` (>1 means slower than the reference)."""
    return median([t / r for t, r in zip(times, ref_times)])


def random_input(shape: Union[Sequence[int], torch.Size], seed: int = 0) -> torch.Tensor:
    """A reproducible ``(1, 3, H, W)`` standard-normal input for ``shape = (H, W)``."""
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f'input shape must be positive (H W), got {h} {w}.')
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, h, w, generator=g)
