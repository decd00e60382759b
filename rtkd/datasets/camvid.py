"""CamVid (11 classes + void) in the 480x360 SegNet layout."""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .transforms import add_seg_map_checks

CAMVID_VOID = 11

#: Places tried, in order, when the configured ``data_root`` does not exist.
DEFAULT_ROOT_CANDIDATES = ('data/camvid', '../shared/data/camvid')


def resolve_camvid_root(data_root: Optional[str],
                        candidates: Sequence[str] = DEFAULT_ROOT_CANDIDATES) -> str:
    """Return the CamVid folder to use.

    An explicitly configured ``data_root`` must exist. Only when it is left at the default
    (``None`` or ``'data/camvid'``) are the environment variable ``RTKD_CAMVID_ROOT`` and then
    ``data/camvid`` and ``../shared/data/camvid`` (relative to the working directory) tried, so a
    typo in a user's path never silently falls back to other data.

    Args:
        data_root (str, optional): the configured dataset folder.
        candidates (Sequence[str]): fallback folders tried after ``RTKD_CAMVID_ROOT``.

    Returns:
        str: an existing folder.

    Raises:
        FileNotFoundError: none of the places exists; the message lists all of them.
    """
    if data_root in (None, DEFAULT_ROOT_CANDIDATES[0]):
        places = [data_root, os.environ.get('RTKD_CAMVID_ROOT'), *candidates]
    else:
        places = [data_root]
    tried = []
    for path in places:
        if not path or path in tried:
            continue
        tried.append(path)
        if osp.isdir(path):
            if path != data_root:
                print_log(
                    f'CamVid: data_root {data_root!r} does not exist, using {path!r}',
                    logger='current')
            return path
    raise FileNotFoundError(
        'CamVid dataset folder not found; looked for it at ' +
        ', '.join(repr(osp.abspath(p)) for p in tried) +
        " - pass data_root='<folder with train/ trainannot/ val/ valannot/>' "
        '(e.g. --cfg-options train_dataloader.dataset.data_root=...) or set RTKD_CAMVID_ROOT.')


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, 11-class version (Brostow et al. 2009; SegNet 480x360 split).

    Folder layout (as in the SegNet tutorial copy)::

        data_root/
          train/*.png  trainannot/*.png   (367 pairs)
          val/*.png    valannot/*.png     (101 pairs)
          test/*.png   testannot/*.png    (233 pairs)

    Labels are single-channel PNGs holding a class index per pixel: 0..10 are the classes below
    and 11 is *void*. Void is mapped to 255 on load, the ignore index used by mmseg's losses,
    metrics and the data preprocessor's label padding, so void is ignored end to end.

    Every ``LoadAnnotations`` of the pipeline is followed by a
    :class:`~rtkd.datasets.transforms.CheckSegMapSize` (added here, no config line needed), so a
    label map whose size differs from its image fails when it is loaded, naming both files.

    Args:
        data_root (str): dataset folder; see :func:`resolve_camvid_root` for the fallbacks.
        data_prefix (dict): ``img_path`` / ``seg_map_path`` sub-folders,
            e.g. ``dict(img_path='train', seg_map_path='trainannot')``.
        **kwargs: passed to :class:`mmseg.datasets.BaseSegDataset`.
    """

    METAINFO = dict(
        classes=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence',
                 'Car', 'Pedestrian', 'Bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
                 [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                 [0, 128, 192]])

    def __init__(self,
                 data_root: Optional[str] = 'data/camvid',
                 data_prefix: dict = dict(img_path='train', seg_map_path='trainannot'),
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        data_root = resolve_camvid_root(data_root)
        for key in ('img_path', 'seg_map_path'):
            sub = data_prefix.get(key)
            if sub and not osp.isdir(osp.join(data_root, sub)):
                raise FileNotFoundError(
                    f'CamVid {key} folder {osp.abspath(osp.join(data_root, sub))!r} does not '
                    f'exist; data_root must hold {sub}/ (check data_root and data_prefix).')
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
        add_seg_map_checks(self.pipeline)

    def load_data_list(self) -> list:
        """List image/label pairs; each sample's ``label_map`` (applied by ``LoadAnnotations``)
        sends void (11) to 255 on top of mmseg's own class remapping.

        The map is added per sample rather than through ``get_label_map`` so that the dataset
        metainfo (palette, classes) stays the plain 11-class one.

        Returns:
            list[dict]: one dict per sample.
        """
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f'CamVid: no {self.img_suffix} images found under '
                f'{osp.abspath(self.data_prefix.get("img_path", self.data_root))!r}.')
        for info in data_list:
            label_map = dict(info.get('label_map') or {})
            label_map.setdefault(CAMVID_VOID, 255)
            info['label_map'] = label_map
        return data_list
