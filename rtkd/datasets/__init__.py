"""Datasets and data checks registered into mmseg's ``DATASETS`` / ``TRANSFORMS`` registries."""
from .camvid import CamVidDataset
from .recorded_crop import GEOMETRY_META_KEYS, RecordedRandomCrop
from .transforms import CheckSegMapSize, add_seg_map_checks, seg_map_size_problem

__all__ = [
    'CamVidDataset', 'RecordedRandomCrop', 'GEOMETRY_META_KEYS', 'CheckSegMapSize',
    'add_seg_map_checks', 'seg_map_size_problem'
]
