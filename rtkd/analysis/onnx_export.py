"""Export a segmentor's ``mode='tensor'`` forward to ONNX and check it with ONNX Runtime.

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), static
input shape. It needs only ``onnx``; the dynamo exporter (torch's default since 2.9) additionally
needs ``onnxscript`` and can be chosen with ``exporter='dynamo'`` when that is installed.

One rewrite is applied to a *copy* of the model before export: ``nn.AdaptiveAvgPool2d`` with an
output size that does not divide the input size (pyramid pooling bins 3 and 6 on a 16 x 32 map,
as in Fast-SCNN at 512 x 1024) has no ONNX equivalent in the TorchScript exporter. It is replaced
by :class:`ExactAdaptiveAvgPool2d`, the same average pooling written as two matrix products
(bin ``i`` of ``o`` over ``n`` inputs averages ``[floor(i n / o), ceil((i + 1) n / o))``, PyTorch's
definition). The check against the *original* PyTorch model covers this rewrite too.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .stats import TensorForward


def _pool_matrix(n: int, o: int) -> torch.Tensor:
    """``(o, n)`` averaging matrix of 1-D adaptive average pooling from ``n`` to ``o`` bins.

    Built in numpy so that a traced export stores it as one constant.
    """
    m = np.zeros((o, n), dtype=np.float32)
    for i in range(o):
        start, end = (i * n) // o, math.ceil((i + 1) * n / o)
        m[i, start:end] = 1.0 / (end - start)
    return torch.from_numpy(m)


class ExactAdaptiveAvgPool2d(nn.Module):
    """Adaptive average pooling that the TorchScript ONNX exporter can always export.

    ``y = P_h @ x @ P_w^T`` with the averaging matrices of :func:`_pool_matrix` (built as
    constants for the traced, static input shape). Falls back to ``F.adaptive_avg_pool2d`` when
    the output size divides the input size (exported as (Global)AveragePool).

    Args:
        output_size (int | tuple): target size, as in ``nn.AdaptiveAvgPool2d``.
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``x`` of shape ``(N, C, H, W)`` to ``(N, C, oh, ow)``."""
        h, w = int(x.shape[-2]), int(x.shape[-1])
        size = self.output_size
        oh, ow = (size, size) if isinstance(size, int) else size
        oh, ow = oh or h, ow or w
        if h % oh == 0 and w % ow == 0:
            return F.adaptive_avg_pool2d(x, (oh, ow))
        ph = _pool_matrix(h, oh).to(x.dtype)
        pw = _pool_matrix(w, ow).to(x.dtype).t().contiguous()
        return torch.matmul(torch.matmul(ph, x), pw)


def make_exportable(model: nn.Module) -> Tuple[nn.Module, int]:
    """Return a deep copy of ``model`` with every ``nn.AdaptiveAvgPool2d`` made exportable.

    Args:
        model (nn.Module): the model (left unchanged).

    Returns:
        tuple: the copy and the number of replaced modules.
    """
    model = copy.deepcopy(model)
    n = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(module, child_name, ExactAdaptiveAvgPool2d(child.output_size))
                n += 1
    return model, n


def export_onnx(model: nn.Module,
                shape: Sequence[int],
                out_file: str,
                opset: int = 17,
                resize_to_input: bool = False,
                exporter: str = 'torchscript') -> str:
    """Export ``segmentor(x, mode='tensor')`` for a ``1 x 3 x H x W`` input to an ONNX file.

    Args:
        model (nn.Module): a segmentor in eval mode (CPU).
        shape (sequence): input ``(H, W)``; the graph has this static shape.
        out_file (str): ONNX file to write.
        opset (int): ONNX opset version.
        resize_to_input (bool): if True the graph also resizes the logits to ``H x W``
            (bilinear); if False it outputs them at the decode head's resolution.
        exporter (str): ``'torchscript'`` (``dynamo=False``, default) or ``'dynamo'``
            (needs ``onnxscript``).

    Returns:
        str: ``out_file``. Input name ``input``, output name ``logits``.
    """
    if exporter not in ('torchscript', 'dynamo'):
        raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}.")
    if exporter == 'dynamo':
        try:
            import onnxscript  # noqa: F401
        except ImportError as e:
            raise ImportError("the dynamo ONNX exporter needs the `onnxscript` package; install "
                              "it or use exporter='torchscript'.") from e
    exportable, _ = make_exportable(model)
    wrapper = TensorForward(exportable, resize_to_input=resize_to_input).eval()
    x = torch.randn(1, 3, int(shape[0]), int(shape[1]))
    return export_module(wrapper, x, out_file, ['logits'], opset=opset, exporter=exporter)


def export_module(module: nn.Module,
                  x: torch.Tensor,
                  out_file: str,
                  output_names: Sequence[str],
                  opset: int = 17,
                  exporter: str = 'torchscript',
                  dynamic_batch: bool = False) -> str:
    """Export ``module(x)`` (one tensor in, a tensor or a tuple of tensors out) to ONNX.

    The shared export step of :func:`export_onnx` and the teacher-cache ONNX backend
    (:mod:`rtkd.distill.onnx_teacher`). Rewrite non-exportable modules first
    (:func:`make_exportable`).

    Args:
        module (nn.Module): the module, in eval mode (CPU).
        x (Tensor): example input; the graph has its shape (``H x W`` static).
        out_file (str): ONNX file to write.
        output_names (sequence[str]): one name per output.
        opset (int): ONNX opset version.
        exporter (str): ``'torchscript'`` (``dynamo=False``) or ``'dynamo'``.
        dynamic_batch (bool): make axis 0 of the input and of every output dynamic.

    Returns:
        str: ``out_file``. Input name ``input``.
    """
    axes = None
    if dynamic_batch:
        axes = {n: {0: 'batch'} for n in ['input', *output_names]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')  # TorchScript-exporter deprecation and tracer warnings
        torch.onnx.export(
            module, (x, ),
            out_file,
            dynamo=(exporter == 'dynamo'),
            opset_version=opset,
            input_names=['input'],
            output_names=list(output_names),
            dynamic_axes=axes,
            do_constant_folding=True)
    import onnx
    onnx.checker.check_model(onnx.load(out_file))
    return out_file


def make_ort_session(onnx_file: str, threads: Optional[int] = None):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (1 inter-op thread).

    Args:
        onnx_file (str): the model.
        threads (int, optional): intra-op threads; None = ONNX Runtime's default.

    Returns:
        onnxruntime.InferenceSession: the session.
    """
    import onnxruntime as ort
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx_file, sess_options=opts, providers=['CPUExecutionProvider'])


def verify_onnx(model: nn.Module,
                onnx_file: str,
                x: torch.Tensor,
                threads: Optional[int] = None,
                resize_to_input: bool = False,
                session=None) -> Tuple[float, float]:
    """Run PyTorch and ONNX Runtime on the same input and compare the logits.

    Args:
        model (nn.Module): the original segmentor (eval mode).
        onnx_file (str): its export.
        x (Tensor): input ``(1, 3, H, W)`` of the exported shape.
        threads (int, optional): ONNX Runtime intra-op threads.
        resize_to_input (bool): must match the export.
        session (InferenceSession, optional): reuse an existing session.

    Returns:
        tuple: ``(max |torch - onnxruntime|, max |torch|)``.
    """
    sess = session if session is not None else make_ort_session(onnx_file, threads)
    with torch.no_grad():
        ref = TensorForward(model, resize_to_input=resize_to_input)(x).numpy()
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    if out.shape != ref.shape:
        raise RuntimeError(f'ONNX output shape {out.shape} differs from PyTorch {ref.shape}.')
    return float(np.abs(out - ref).max()), float(np.abs(ref).max())
