"""``RecordedRandomCrop``: mmseg's ``RandomCrop`` that keeps its crop box in the sample's meta.

mmseg's ``RandomCrop`` draws a box and forgets it. A teacher-output cache (see
:mod:`rtkd.distill.teacher_cache`) must put the cached teacher maps through exactly the
resize / crop / flip each training sample received, so the box has to travel with the sample.
This transform draws the box with the same random calls as mmseg's (so a run with either
transform sees the same crops for the same seed) and stores it as ``results['crop_bbox']``
``= (y1, y2, x1, x2)`` in the coordinates of the image it crops, clipped to that image (a crop
larger than the image keeps the whole image, as numpy slicing does). ``PackSegInputs`` puts it
into the data sample's meta when ``'crop_bbox'`` is in its ``meta_keys``; use
:data:`GEOMETRY_META_KEYS`.
"""
from __future__ import annotations

from mmseg.datasets.transforms import RandomCrop
from mmseg.registry import TRANSFORMS

#: ``PackSegInputs`` meta keys: mmseg's defaults plus the crop box.
GEOMETRY_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                      'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label', 'crop_bbox')


@TRANSFORMS.register_module()
class RecordedRandomCrop(RandomCrop):
    """Random crop of image and segmentation maps that records its box.

    Args:
        crop_size (int | tuple[int, int]): crop (h, w).
        cat_max_ratio (float): the largest share one class may take in the crop (mmseg's rule:
            up to 10 redraws).
        ignore_index (int): label ignored by ``cat_max_ratio``.

    Added keys: ``crop_bbox`` (tuple ``(y1, y2, x1, x2)``, clipped to the image).
    """

    def transform(self, results: dict) -> dict:
        """Crop ``img`` and every map in ``seg_fields``; record the box.

        Args:
            results (dict): the pipeline's sample dict.

        Returns:
            dict: the cropped sample with ``img_shape`` and ``crop_bbox`` updated.
        """
        img = results['img']
        y1, y2, x1, x2 = self.crop_bbox(results)
        h, w = img.shape[:2]
        box = (int(y1), int(min(y2, h)), int(x1), int(min(x2, w)))
        results['img'] = self.crop(img, box)
        for key in results.get('seg_fields', []):
            results[key] = self.crop(results[key], box)
        results['img_shape'] = results['img'].shape[:2]
        results['crop_bbox'] = box
        return results
