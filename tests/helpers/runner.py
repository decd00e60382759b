"""Complete tiny config files for the mmengine Runner (CamVid segmentation, an image-folder
classification, a COCO detection), and ``torchrun`` with two CPU processes.
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time

import pytest

from .repo import CAMVID_BASES, ROOT


def write_config(path: str,
                 data_root: str,
                 work_dir: str,
                 model: dict,
                 max_iters: int = 2,
                 extra: str = '') -> str:
    """A complete tiny config file (also used by torchrun)."""
    text = f"""
_base_ = {CAMVID_BASES!r}
work_dir = {work_dir!r}
data_root = {data_root!r}
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='RandomCrop', crop_size=(32, 48)), dict(type='PackSegInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                 dict(type='PackSegInputs')]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={max_iters}, val_interval=2)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=5),
                     logger=dict(interval=1), visualization=dict(draw=False))
randomness = dict(seed=0)
model = {model!r}
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return path


def cls_runner_config(path: str, data_root: str, work_dir: str, model: dict) -> str:
    """A complete tiny mmpretrain config file on an image folder (``make_tiny_folder``)."""
    text = f"""
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
work_dir = {work_dir!r}
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
dataset = dict(type='CustomDataset', data_root={data_root!r}, pipeline=pipeline)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dataset,
                        sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dataset,
                      sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=False, max_iters=2, val_interval=2)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
param_scheduler = []
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
model = {model!r}
"""
    with open(path, 'w') as f:
        f.write(text)
    return path


def det_runner_config(path: str, data_root: str, work_dir: str, model: dict) -> str:
    """A complete tiny mmdet config file on a COCO folder (``make_tiny_coco``)."""
    ann = osp.join(data_root, 'ann.json')
    text = f"""
_base_ = ['mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
work_dir = {work_dir!r}
metainfo = dict(classes=('red', 'green'))
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                  dict(type='Resize', scale=(64, 64), keep_ratio=True),
                  dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 64),
                  keep_ratio=True), dict(type='LoadAnnotations', with_bbox=True),
                 dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                       'img_shape', 'scale_factor'))]
dataset = dict(type='CocoDataset', data_root={data_root!r}, ann_file='ann.json',
               data_prefix=dict(img='images/'), metainfo=metainfo)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(dataset, pipeline=train_pipeline,
                                     filter_cfg=dict(filter_empty_gt=True)))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, drop_last=False,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(dataset, pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file={ann!r}, metric='bbox', format_only=False)
test_evaluator = val_evaluator
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.001, momentum=0.9))
param_scheduler = []
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
model = {model!r}
"""
    with open(path, 'w') as f:
        f.write(text)
    return path


TORCHRUN = shutil.which('torchrun') or osp.join(osp.dirname(sys.executable), 'torchrun')
needs_torchrun = pytest.mark.skipif(not osp.isfile(TORCHRUN), reason='torchrun not available')


def run_torchrun(cfg_file: str, env: dict = None, timeout: int = 300):
    """``torchrun --nproc_per_node=2 tools/train.py CFG --launcher pytorch`` on a free port.

    Returns:
        tuple[subprocess.CompletedProcess, float]: the finished process and its run time (s).
    """
    with socket.socket() as sock:  # a free port: other torchrun jobs may share the machine
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    t0 = time.time()
    proc = subprocess.run([
        TORCHRUN, '--nproc_per_node=2', f'--master_port={port}',
        osp.join(ROOT, 'tools/train.py'), cfg_file, '--launcher', 'pytorch'
    ],
                          cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})),
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    return proc, time.time() - t0
