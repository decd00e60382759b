"""Tiny models and inputs: an mmseg EncoderDecoder and an mmdet RetinaNet as dicts, a seeded
segmentation batch, a detection data sample, a plain MSE distillation loss (registered as
``_TestMSE``) and a saved (randomly initialised) teacher.
"""
from __future__ import annotations

import os.path as osp
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

if TYPE_CHECKING:
    from mmdet.structures import DetDataSample

BN = dict(type='BN', requires_grad=True)
CE = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
DP = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(32, 48))


def seg_model(base: int, aux: bool = False) -> dict:
    """A tiny mmseg EncoderDecoder (ResNetV1c-18, output stride 8, 11 classes)."""
    top = base * 8
    model = dict(
        type='EncoderDecoder',
        data_preprocessor=DP,
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            base_channels=base,
            stem_channels=base,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=BN,
            contract_dilation=True),
        decode_head=dict(
            type='FCNHead',
            in_channels=top,
            in_index=3,
            channels=2 * base,
            num_convs=1,
            concat_input=False,
            num_classes=11,
            norm_cfg=BN,
            dropout_ratio=0.1,
            loss_decode=CE),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    if aux:
        model['auxiliary_head'] = dict(
            type='FCNHead',
            in_channels=base * 4,
            in_index=2,
            channels=base,
            num_convs=1,
            concat_input=False,
            num_classes=11,
            norm_cfg=BN,
            loss_decode=dict(CE, loss_weight=0.4))
    return model


def batch(n: int = 2, h: int = 32, w: int = 48, seed: int = 0) -> dict:
    """``n`` random uint8 images with random 11-class labels, as a segmentation data loader
    yields them."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 255, (3, h, w), generator=g, dtype=torch.uint8))
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 11, (1, h, w), generator=g))
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


@MODELS.register_module(name='_TestMSE', force=True)
class PlainMSE(nn.Module):
    """Plain MSE (for tests that need no particular loss), registered as ``_TestMSE``."""

    extra_inputs = ()

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student, teacher, **extra):
        if student.shape != teacher.shape:
            raise ValueError(f'shapes differ: {tuple(student.shape)} vs {tuple(teacher.shape)}')
        return ((student - teacher.detach())**2).mean() * self.loss_weight


def write_teacher(root: str, model: dict, scope: str = 'mmseg') -> tuple:
    """Build a (randomly initialised) teacher and save its config and checkpoint under ``root``.

    Args:
        root (str): an existing folder.
        model (dict): the teacher's model config.
        scope (str): its registry scope.

    Returns:
        tuple[str, str]: the config path and the checkpoint path, as a recipe's ``teacher=dict(
        config=..., checkpoint=...)`` takes them.
    """
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = {scope!r}\nmodel = {model!r}\n")
    with DefaultScope.overwrite_default_scope(scope):
        teacher = MODELS.build(model)
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    return cfg_path, ckpt


def retinanet(base: int, fpn: int) -> dict:
    """A tiny mmdet RetinaNet: ResNet-18 layout with ``base`` channels, FPN with ``fpn``."""
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=32),
        backbone=dict(
            type='ResNet',
            depth=18,
            base_channels=base,
            stem_channels=base,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=BN,
            norm_eval=False,
            style='pytorch'),
        neck=dict(
            type='FPN',
            in_channels=[base, base * 2, base * 4, base * 8],
            out_channels=fpn,
            start_level=1,
            add_extra_convs='on_input',
            num_outs=5),
        bbox_head=dict(
            type='RetinaHead',
            num_classes=2,
            in_channels=fpn,
            stacked_convs=1,
            feat_channels=fpn,
            anchor_generator=dict(
                type='AnchorGenerator',
                octave_base_scale=4,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides=[8, 16, 32, 64, 128]),
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[.0, .0, .0, .0],
                target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(
                type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.4,
                min_pos_iou=0,
                ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        test_cfg=dict(
            nms_pre=100,
            min_bbox_size=0,
            score_thr=0.0,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=20))


def det_sample(boxes, shape=(64, 64)) -> DetDataSample:
    """A detection data sample with ground-truth ``boxes`` (x1, y1, x2, y2; label 0)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData
    s = DetDataSample()
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    s.gt_instances = InstanceData(bboxes=HorizontalBoxes(b), labels=torch.zeros(len(b)).long())
    s.set_metainfo(
        dict(
            img_shape=shape,
            ori_shape=shape,
            pad_shape=shape,
            batch_input_shape=shape,
            scale_factor=(1.0, 1.0)))
    return s
