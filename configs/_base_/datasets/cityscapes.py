# Cityscapes 512x1024 crops: mmseg's own dataset definition (data/cityscapes, gtFine *_labelTrainIds).
_base_ = ['mmseg::_base_/datasets/cityscapes.py']
