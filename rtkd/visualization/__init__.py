"""Library code behind ``tools/analysis/``: reading run logs, HTML reports, prediction and
channel-distribution figures, forward-hook taps and model loading for the analysis tools.

Imported lazily by the tools (not by ``import rtkd``) so that training never needs matplotlib.
"""
from .run_logs import RunLog, load_run, parse_class_table, read_stats_csv  # noqa: F401
from .taps import OutputRecorder, find_module, parse_tap  # noqa: F401

__all__ = ['RunLog', 'load_run', 'parse_class_table', 'read_stats_csv', 'OutputRecorder',
           'find_module', 'parse_tap']
