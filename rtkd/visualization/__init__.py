"""Library code behind ``tools/analysis/``: run logs read into pandas, HTML/markdown reports,
prediction and channel-distribution figures (matplotlib).

Models are loaded and tapped through :mod:`rtkd.apis` (``init_segmentor``, ``record_taps``).
Imported lazily by the tools (not by ``import rtkd``) so that training never needs matplotlib.
"""
from .run_logs import RunLog, load_run, read_stats_csv, read_test_metrics  # noqa: F401

__all__ = ['RunLog', 'load_run', 'read_stats_csv', 'read_test_metrics']
