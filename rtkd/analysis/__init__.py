"""Model analysis helpers behind ``tools/analysis/model_stats.py`` and
``tools/deploy/export_onnx.py``.

Not imported by ``import rtkd`` (keeps training start-up light); import it explicitly::

    from rtkd.analysis import build_segmentor, count_params, count_flops
"""
from .onnx_export import export_onnx, make_ort_session, verify_onnx
from .stats import (TensorForward, build_segmentor, count_flops, count_params, load_weights,
                    time_round_robin)

__all__ = [
    'TensorForward', 'build_segmentor', 'count_flops', 'count_params', 'load_weights',
    'time_round_robin', 'export_onnx', 'make_ort_session', 'verify_onnx'
]
