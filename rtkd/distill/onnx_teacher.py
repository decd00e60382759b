"""Run a distiller's teacher, cut at its taps, in ONNX Runtime (teacher-cache builds).

``tools/distill/cache_teacher.py RECIPE --out DIR --backend onnxruntime`` builds a teacher-output
cache (:mod:`rtkd.distill.teacher_cache`) with the teacher exported to ONNX and run by ONNX
Runtime's CPU provider instead of PyTorch. The targets are the same (to float rounding); only
the engine that computes them differs.

How the graph is made:

* the teacher is deep-copied, its ``nn.AdaptiveAvgPool2d`` modules made exportable
  (:func:`rtkd.analysis.onnx_export.make_exportable`), and a fresh
  :class:`~rtkd.distill.taps.TapSet` with the recipe's teacher taps is put on the copy
  (rtkd's own tap machinery: the same module names, ``@call`` selection, ``#in`` / ``[i]``
  indexing and early stop as the live teacher);
* :class:`TeacherTapsModule` wraps it: ``forward(x)`` re-normalises the student-preprocessed
  batch for the teacher (the distiller's own ``_teacher_inputs``), runs the teacher until every
  tap fired and returns the recorded taps as a tuple. Traced by torch's TorchScript exporter
  (:func:`rtkd.analysis.onnx_export.export_module`), the graph's outputs are exactly the tapped
  tensors; what the taps do not need is pruned;
* one graph per input size ``C x H x W`` (each geometric scale is one size for a dataset of
  equal-sized images; the exact mode's padded batches are one size), batch axis dynamic. Input
  ``H``/``W`` are static on purpose: the adaptive-pooling rewrite and mmseg's size-dependent
  resizes are traced as constants of the input size, so a dynamic-size graph would be wrong for
  other sizes;
* **checked before use**: on the first batch of every new input shape the ONNX outputs are
  compared with the live PyTorch teacher (the original, not the rewritten copy); a tap whose
  ``max |onnx - torch| > tol * max(1, max |torch|)`` stops the build (:class:`OnnxMismatchError`)
  instead of caching wrong targets.

Limits: taps must be tensors (the cache stores tensors anyway); the teacher runs with
``data_samples=None`` (``mode='tensor'`` segmentors ignore them); a dataset with many image
sizes exports one graph per size (a few seconds each).
"""
from __future__ import annotations

import os.path as osp
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .taps import TapSet, TeacherDone, _TapHook
from .teacher_cache import TeacherCacheError

#: default tolerance of the export check (relative to max(1, max |torch|))
ONNX_TOL = 1e-3


class OnnxMismatchError(TeacherCacheError):
    """The ONNX export of the teacher does not compute what the PyTorch teacher computes."""


def _drop_tap_hooks(model: nn.Module) -> None:
    """Remove the distiller's tap hooks from a deep copy of the teacher (they never fire on it,
    but a trace should not carry them)."""
    for m in model.modules():
        for hooks in (m._forward_hooks, m._forward_pre_hooks):
            for k in [k for k, h in hooks.items() if isinstance(h, _TapHook)]:
                del hooks[k]


def _teacher_input_fn(distiller):
    """``f(x)``: the teacher's view of a student-preprocessed batch, as the distiller makes it
    (re-normalisation / channel order, :func:`rtkd.distill.teacher.adapt_inputs`)."""
    method = getattr(type(distiller), '_teacher_inputs', None)
    if method is not None:  # older Distiller: its own method
        return getattr(distiller, '_teacher_inputs')
    from .teacher import adapt_inputs
    transform = distiller._teacher_norm  # (an AttributeError if the distiller changed)
    return lambda x: adapt_inputs(transform, x)


class TeacherTapsModule(nn.Module):
    """``forward(x)`` = the tuple of a distiller's teacher taps for the student batch ``x``.

    Args:
        distiller (Distiller): a distiller with a live teacher (left unchanged).
        exportable (bool): rewrite adaptive pooling for the ONNX exporter (on the copy).
    """

    def __init__(self, distiller, exportable: bool = True) -> None:
        super().__init__()
        from ..analysis.onnx_export import make_exportable
        teacher = distiller.teacher
        if exportable:
            teacher, _ = make_exportable(teacher)
        else:
            import copy
            teacher = copy.deepcopy(teacher)
        _drop_tap_hooks(teacher)
        self.teacher = teacher.eval()
        specs = list(distiller._teacher_specs)
        self.names: List[str] = [sp.name for sp in specs]
        self.mode = distiller.teacher_mode
        self._tapset = TapSet(self.teacher, specs, 'teacher', stop_when_done=True)
        self._to_teacher = _teacher_input_fn(distiller)  # a function: not a submodule

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run the teacher on ``x`` (student normalisation) until all taps fired.

        Args:
            x (Tensor): ``N x C x H x W`` preprocessed batch.

        Returns:
            tuple[Tensor]: the taps, in ``self.names`` order.
        """
        with self._tapset.recording() as rec:
            try:
                self.teacher(self._to_teacher(x), None, mode=self.mode)
            except TeacherDone:
                pass
        out = []
        for n in self.names:
            v = rec.get(n)
            if not torch.is_tensor(v):
                raise TeacherCacheError(
                    f'teacher tap {n!r} gives a {type(v).__name__}, not a tensor; the '
                    'onnxruntime backend exports tensor taps only: use --backend torch.')
            out.append(v)
        return tuple(out)


class OnnxTeacherRunner:
    """Callable ``runner(inputs, data_samples) -> {tap: Tensor}`` backed by ONNX Runtime.

    A drop-in for ``Distiller._run_teacher`` in the cache builders.

    Args:
        distiller (Distiller): the recipe's distiller with a live teacher (used for the export
            and for the check against PyTorch).
        tol (float): check tolerance, relative to ``max(1, max |torch|)`` per tap.
        threads (int | None): ONNX Runtime intra-op threads (None: ``torch.get_num_threads()``).
        opset (int): ONNX opset.
        workdir (str | None): where the ``.onnx`` files go (None: a temporary folder, removed
            by :meth:`close`).
    """

    def __init__(self,
                 distiller,
                 tol: float = ONNX_TOL,
                 threads: Optional[int] = None,
                 opset: int = 17,
                 workdir: Optional[str] = None) -> None:
        if not tol > 0:
            raise ValueError(f'the ONNX check tolerance must be > 0, got {tol}.')
        self.distiller = distiller
        self.tol = float(tol)
        self.threads = int(threads or torch.get_num_threads())
        self.opset = int(opset)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix='rtkd-onnx-')
        self.workdir = workdir or self._tmp.name
        self.module = TeacherTapsModule(distiller).eval()
        self.names = self.module.names
        self.sessions: Dict[tuple, object] = {}  # (C, H, W) -> session
        self.checked: Dict[tuple, dict] = {}  # full input shape -> check result

    # -- export and check -----------------------------------------------------------------
    def export(self, x: Tensor, out_file: str) -> str:
        """Export :attr:`module` for inputs of ``x``'s ``C x H x W`` (dynamic batch)."""
        from ..analysis.onnx_export import export_module
        return export_module(
            self.module, x, out_file, self.names, opset=self.opset, dynamic_batch=True)

    def _session(self, x: Tensor):
        key = tuple(int(d) for d in x.shape[1:])
        if key not in self.sessions:
            from ..analysis.onnx_export import make_ort_session
            path = osp.join(self.workdir, 'teacher_{}.onnx'.format('x'.join(map(str, key))))
            with torch.no_grad():
                self.export(x[:1].contiguous(), path)
            self.sessions[key] = make_ort_session(path, self.threads)
        return self.sessions[key]

    def _run_ort(self, x: Tensor) -> Dict[str, Tensor]:
        sess = self._session(x)
        outs = sess.run(self.names, {'input': x.detach().cpu().float().contiguous().numpy()})
        return {n: torch.from_numpy(np.ascontiguousarray(o)) for n, o in zip(self.names, outs)}

    def check(self, x: Tensor, got: Dict[str, Tensor]) -> dict:
        """Compare ``got`` (ONNX Runtime on ``x``) with the live PyTorch teacher.

        Returns:
            dict: tap -> ``max_abs`` |onnx - torch| and ``ref_max`` max |torch|.

        Raises:
            OnnxMismatchError: a tap's shape differs, or its difference exceeds the tolerance.
        """
        ref = self.distiller._run_teacher(x, None)
        res = {}
        for n in self.names:
            r, g = ref[n].detach().float().cpu(), got[n]
            if tuple(r.shape) != tuple(g.shape):
                raise OnnxMismatchError(
                    f'the ONNX export of the teacher gives tap {n!r} of shape {tuple(g.shape)}, '
                    f'PyTorch {tuple(r.shape)} (input {tuple(x.shape)}); build with --backend '
                    'torch.')
            diff = float((r - g).abs().max()) if r.numel() else 0.0
            top = float(r.abs().max()) if r.numel() else 0.0
            if not diff <= self.tol * max(1.0, top):  # NaN fails too
                raise OnnxMismatchError(
                    f'the ONNX export of the teacher differs from PyTorch on tap {n!r} (input '
                    f'{tuple(x.shape)}): max |onnx - torch| = {diff:.3g} > {self.tol:g} x '
                    f'max(1, max |torch| = {top:.3g}); nothing of this input size was cached. '
                    'Build with --backend torch (or raise --onnx-tol if the difference is '
                    'float rounding).')
            res[n] = dict(max_abs=diff, ref_max=top)
        return res

    # -- call -------------------------------------------------------------------------------
    def __call__(self, inputs: Tensor, data_samples=None) -> Dict[str, Tensor]:
        """The teacher taps for a preprocessed batch (``data_samples`` are not used).

        Args:
            inputs (Tensor): ``N x C x H x W`` (student normalisation).
            data_samples: ignored (``mode='tensor'`` teachers do not read them).

        Returns:
            dict[str, Tensor]: tap name -> value (CPU, float32).
        """
        got = self._run_ort(inputs)
        shape = tuple(int(d) for d in inputs.shape)
        if shape not in self.checked:
            self.checked[shape] = self.check(inputs, got)
        return got

    def info(self) -> dict:
        """Manifest facts: engine versions, threads, opset, tolerance and every check made."""
        import onnxruntime as ort
        return dict(
            onnxruntime=ort.__version__,
            torch=torch.__version__,
            opset=self.opset,
            threads=self.threads,
            tol=self.tol,
            provider='CPUExecutionProvider',
            graphs=['x'.join(map(str, k)) for k in self.sessions],
            checks={
                'x'.join(map(str, k)): v
                for k, v in self.checked.items()
            })

    def close(self) -> None:
        """Drop the sessions and the temporary ``.onnx`` files."""
        self.sessions.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def check_onnxruntime() -> None:
    """Fail early, with the fix, when ``onnx`` / ``onnxruntime`` are not installed."""
    for pkg in ('onnx', 'onnxruntime'):
        try:
            __import__(pkg)
        except ImportError as e:
            raise ImportError(f'--backend onnxruntime needs the `{pkg}` package: pip install '
                              f'{pkg} (see requirements/tests.txt).') from e


__all__ = [
    'TeacherTapsModule', 'OnnxTeacherRunner', 'OnnxMismatchError', 'ONNX_TOL', 'check_onnxruntime'
]
