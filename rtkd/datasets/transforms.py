"""Data checks run inside the loading pipeline: a bad image/label pair fails where it is loaded.

A label map whose size differs from its image is not an error for mmcv's transforms (random
crops and flips slice both arrays independently), so such a pair trains silently and crashes only
at the first validation with an ``IndexError`` that names no file. :class:`CheckSegMapSize` stops
at the first load of the pair and names both files and both sizes.

:class:`~rtkd.datasets.CamVidDataset` inserts the check after every ``LoadAnnotations`` of its
pipeline by itself (:func:`add_seg_map_checks`); for other datasets put
``dict(type='CheckSegMapSize')`` right after ``dict(type='LoadAnnotations')``.
"""
from __future__ import annotations

from typing import Optional, Sequence

from mmcv.transforms import BaseTransform
from mmcv.transforms import LoadAnnotations as MMCVLoadAnnotations
from mmseg.registry import TRANSFORMS


def seg_map_size_problem(img_hw: Sequence[int], seg_hw: Sequence[int], img_path: Optional[str],
                         seg_map_path: Optional[str]) -> Optional[str]:
    """Describe a size mismatch between an image and its label map.

    Args:
        img_hw (Sequence[int]): image (height, width) as loaded (``ori_shape``).
        seg_hw (Sequence[int]): label map (height, width).
        img_path (str, optional): image file, for the message.
        seg_map_path (str, optional): label file, for the message.

    Returns:
        str | None: a clause naming both files and sizes, or None when the sizes agree.
    """
    img_hw, seg_hw = tuple(img_hw[:2]), tuple(seg_hw[:2])
    if img_hw == seg_hw:
        return None
    return (f'label map {seg_map_path!r} is {seg_hw[0]}x{seg_hw[1]} (HxW) but its image '
            f'{img_path!r} is {img_hw[0]}x{img_hw[1]}')


@TRANSFORMS.register_module()
class CheckSegMapSize(BaseTransform):
    """Fail when the loaded label map and the loaded image differ in size.

    Put it right after ``LoadAnnotations`` (it compares ``gt_seg_map`` with ``ori_shape``, the
    image size before any resize, so it may also follow a ``Resize`` that precedes
    ``LoadAnnotations`` as in mmseg's test pipelines). Costs one tuple comparison per sample.

    Required keys: ``gt_seg_map``, ``ori_shape`` (or ``img_shape``); optional: ``img_path``,
    ``seg_map_path``. Modified keys: none.
    """

    def transform(self, results: dict) -> dict:
        """Check one sample.

        Args:
            results (dict): the pipeline's result dict.

        Returns:
            dict: ``results`` unchanged.

        Raises:
            ValueError: the label map's size differs from the image's.
        """
        seg = results.get('gt_seg_map')
        img_hw = results.get('ori_shape', results.get('img_shape'))
        if seg is None or img_hw is None:
            return results
        problem = seg_map_size_problem(img_hw, seg.shape, results.get('img_path'),
                                       results.get('seg_map_path'))
        if problem is not None:
            raise ValueError(f'{problem}; fix or remove this pair (tools/misc/check_dataset.py '
                             f'CONFIG lists every bad pair of a dataset).')
        return results


def add_seg_map_checks(pipeline) -> int:
    """Insert :class:`CheckSegMapSize` after every ``LoadAnnotations`` of a built pipeline.

    Args:
        pipeline (mmengine.dataset.Compose): a dataset's ``pipeline``; changed in place.
            Transforms already followed by a ``CheckSegMapSize`` are left alone.

    Returns:
        int: the number of checks inserted.
    """
    transforms = getattr(pipeline, 'transforms', None)
    if transforms is None:
        return 0
    added = 0
    i = 0
    while i < len(transforms):
        if isinstance(transforms[i], MMCVLoadAnnotations) and not (
                i + 1 < len(transforms) and isinstance(transforms[i + 1], CheckSegMapSize)):
            transforms.insert(i + 1, CheckSegMapSize())
            added += 1
        i += 1
    return added
