from .per_class_iou_metric import PerClassIoUMetric  # noqa: F401

__all__ = ['PerClassIoUMetric']
