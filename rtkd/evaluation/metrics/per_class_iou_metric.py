"""mmseg's ``IoUMetric`` that also returns its per-class table as scalars."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Sequence

import numpy as np
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``IoUMetric`` whose results also hold every per-class value, e.g. ``IoU.Road``.

    mmseg's ``IoUMetric`` computes per-class IoU / Acc (/ Dice, Fscore, ...) but only prints
    them as a table into the text log and returns the means (``mIoU``, ``mAcc``, ``aAcc``). This
    metric returns the same means (computed by ``IoUMetric`` itself, so they are identical and the
    table is still printed) plus one scalar per class and per-class metric,
    ``'<metric>.<class name>'``, in percent rounded to 2 decimals as in the printed table
    (``nan`` for a class absent from both ground truth and prediction, unless ``nan_to_num``).
    mmengine's ``LoggerHook`` then writes them like any metric: into
    ``vis_data/scalars.json`` (and TensorBoard, when that backend is on) at every validation,
    and into the ``<timestamp>.json`` of a test run, so tools read per-class results from JSON
    instead of parsing the printed table.

    For class ``c`` (pixels with ``ignore_index`` skipped), over the whole evaluated split:
    ``IoU_c = |P_c ∩ G_c| / |P_c ∪ G_c|``, ``Acc_c = |P_c ∩ G_c| / |G_c|``.

    Args:
        class_metrics (Sequence[str]): which per-class columns to return: any of ``'IoU'``,
            ``'Acc'``, ``'Dice'``, ``'Fscore'``, ``'Precision'``, ``'Recall'`` that
            ``iou_metrics`` computes. Default ``('IoU', 'Acc')`` (what ``mIoU`` computes).
        **kwargs: :class:`mmseg.evaluation.IoUMetric` arguments (``ignore_index``,
            ``iou_metrics``, ``nan_to_num``, ``beta``, ``prefix``, ...).
    """

    def __init__(self, class_metrics: Sequence[str] = ('IoU', 'Acc'), **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(class_metrics, str):
            class_metrics = [class_metrics]
        self.class_metrics = tuple(class_metrics)
        known = {'IoU', 'Acc', 'Dice', 'Fscore', 'Precision', 'Recall'}
        bad = [m for m in self.class_metrics if m not in known]
        if bad:
            raise KeyError(f'PerClassIoUMetric: unknown class_metrics {bad}; choose from '
                           f'{sorted(known)}.')

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """The means of ``IoUMetric`` plus ``'<metric>.<class>'`` per class.

        Args:
            results (list): per-batch ``(intersect, union, pred_area, label_area)`` tuples.

        Returns:
            dict[str, float]: ``aAcc``, ``mIoU``, ... and e.g. ``IoU.Sky``, ``Acc.Sky``.
        """
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        areas = [sum(x) for x in zip(*results)]
        per_class = self.total_area_to_metrics(*areas, self.metrics, self.nan_to_num, self.beta)
        missing = [m for m in self.class_metrics if m not in per_class]
        if missing:
            raise KeyError(f'PerClassIoUMetric: class_metrics {missing} are not computed by '
                           f'iou_metrics={self.metrics}; add the matching iou_metrics entry '
                           f'(mIoU: IoU, Acc; mDice: Dice; mFscore: Fscore, Precision, Recall).')
        out = OrderedDict(metrics)
        classes = self.dataset_meta['classes']
        for name in self.class_metrics:
            values = np.asarray(per_class[name], dtype=np.float64)
            for cls, v in zip(classes, values):
                out[f'{name}.{cls}'] = float(np.round(v * 100, 2))
        return dict(out)
