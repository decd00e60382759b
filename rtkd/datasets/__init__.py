"""Datasets registered into mmseg's ``DATASETS`` registry."""
from .camvid import CamVidDataset

__all__ = ['CamVidDataset']
