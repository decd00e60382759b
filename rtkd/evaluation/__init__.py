"""Evaluation metrics registered into mmseg's ``METRICS`` (imported by ``import rtkd``)."""
from .metrics import PerClassIoUMetric  # noqa: F401

__all__ = ['PerClassIoUMetric']
