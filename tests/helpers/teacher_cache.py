"""Teacher-cache recipes on the tiny CamVid: a 1x1-convolution network that commutes with crops
and flips (registered as ``_PixelConvNet``), the recipe writer, the tiny mmseg recipe with an
augmenting pipeline, a saved teacher, and the distiller built from a recipe.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS, DefaultScope
from mmseg.registry import MODELS as SEG_MODELS

from rtkd.datasets import GEOMETRY_META_KEYS
from .models import seg_model, write_teacher
from .repo import CAMVID_BASES

#: the data preprocessor of :func:`pixel_model` (24x32 crops)
PIXEL_DP = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(24, 32))


@SEG_MODELS.register_module(name='_PixelConvNet', force=True)
class PixelConvNet(BaseModel):
    """A 1x1 convolution at full resolution (commutes with crops and flips); MSE-free task loss."""

    def __init__(self, channels: int = 5, seed: int = 0, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        torch.manual_seed(seed)
        self.head = nn.Conv2d(3, channels, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.head(inputs)
        if mode == 'loss':
            return dict(loss_task=out.pow(2).mean() * 1e-3)
        return out

    def loss(self, inputs, data_samples):
        return self.forward(inputs, data_samples, 'loss')


def pixel_model(seed: int) -> dict:
    return dict(type='_PixelConvNet', seed=seed, data_preprocessor=PIXEL_DP)


def write_recipe(path: str,
                 data_root: str,
                 work_dir: str,
                 teacher: dict,
                 pipeline: list,
                 taps: dict,
                 losses: dict,
                 student=None,
                 max_iters: int = 3,
                 seed: int = 0,
                 batch: int = 2,
                 extra: str = '') -> str:
    text = f"""
_base_ = {CAMVID_BASES!r}
work_dir = {work_dir!r}
train_dataloader = dict(batch_size={batch}, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={data_root!r}, pipeline={pipeline!r}))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters}, val_interval=1000)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=5),
                     logger=dict(interval=1), visualization=dict(draw=False))
randomness = dict(seed={seed})
log_processor = dict(by_epoch=False, window_size=1)  # log each iteration's own losses
model = dict(type='Distiller', student={student or dict(model=pixel_model(1), scope='mmseg')!r},
             teacher={teacher!r}, taps={taps!r}, losses={losses!r})
model_wrapper_cfg = dict(type='DistillerDataParallel')
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return path


def saved_teacher(root: str, model: dict) -> dict:
    """A teacher config file and a checkpoint of its (randomly initialised) weights."""
    torch.manual_seed(0)  # the same teacher whatever ran before
    cfg_path, ckpt = write_teacher(root, model)
    return dict(config=cfg_path, checkpoint=ckpt)


def build_distiller(cfg):
    """The recipe's model (a ``Distiller``), built in the mmseg scope, in training mode."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(copy.deepcopy(cfg.model)).train()


AUG_PIPE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(64, 48), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RecordedRandomCrop', crop_size=(32, 48)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs', meta_keys=GEOMETRY_META_KEYS)
]


def seg_recipe(tmp_path, tiny_camvid, seg_teacher, name='r.py', **kw):
    """A CWD recipe from a saved tiny mmseg teacher to a tiny mmseg student on AUG_PIPE."""
    dp = dict(seg_model(4)['data_preprocessor'], size=(32, 48))
    model = seg_model(4)
    # no dropout: mmengine does not restore the torch RNG on --resume, so dropout masks after a
    # resume differ from an uninterrupted run's (the one thing a resumed run cannot repeat)
    model['decode_head'] = dict(model['decode_head'], dropout_ratio=0.0)
    student = dict(model=dict(model, data_preprocessor=dp), scope='mmseg')
    taps = dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg')
    losses = dict(
        loss_cwd=dict(
            type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_logits', teacher='t_logits'))
    return write_recipe(
        str(tmp_path / name),
        tiny_camvid,
        str(tmp_path / 'w'),
        seg_teacher,
        AUG_PIPE,
        taps,
        losses,
        student=student,
        **kw)
