"""Measure an mmseg segmentor: parameters, FLOPs, CPU latency.

Models are built by :func:`rtkd.apis.init_segmentor` (re-exported here as ``build_segmentor``).

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

import time
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

# Models are built and loaded by the one loading layer (re-exported: the tools import them here).
from rtkd.apis import init_segmentor as build_segmentor  # noqa: E402,F401
from rtkd.apis import load_weights  # noqa: E402,F401

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
            out = F.interpolate(
                out,
                size=x.shape[2:],
                mode='bilinear',
                align_corners=bool(getattr(self.segmentor, 'align_corners', False)))
        return out


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


def time_round_robin(fns: Dict[str, Callable[[], object]],
                     warmup: int = 3,
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
