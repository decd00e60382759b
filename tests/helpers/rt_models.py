"""Shared checks for the real-time segmentation networks (Fast-SCNN, ContextNet, ESPNet) tests
(and the ContextNet optimizer test).

Everything runs the real mmseg ``EncoderDecoder`` with its ``SegDataPreProcessor`` built from the
project's configs; inputs are tiny so the whole file runs in seconds on CPU.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from .repo import ROOT


def load_cfg(rel_path: str, options: Optional[dict] = None) -> Config:
    """Load a project config (imports ``rtkd`` through ``custom_imports``)."""
    cfg = Config.fromfile(osp.join(ROOT, rel_path))
    if options:
        cfg.merge_from_dict(options)
    return cfg


def build_model(cfg: Config) -> torch.nn.Module:
    """Build ``cfg.model`` with mmseg's registry and run its weight init."""
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def _samples(n: int, h: int, w: int, num_classes: int, with_gt: bool):
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        if with_gt:
            gt = torch.randint(0, num_classes, (1, h, w), generator=g)
            gt[:, :2] = 255  # some ignored pixels
            s.gt_sem_seg = PixelData(data=gt)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def predict_logits(model: torch.nn.Module, h: int, w: int) -> torch.Tensor:
    """Run ``mode='predict'`` on one random ``h x w`` image; return its seg logits (C, h', w')."""
    model.eval()
    data = model.data_preprocessor(_samples(1, h, w, 2, with_gt=False), training=False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    return results[0].seg_logits.data


def loss_and_check_grads(model: torch.nn.Module,
                         h: int,
                         w: int,
                         batch: int = 2) -> Dict[str, torch.Tensor]:
    """Run ``mode='loss'`` on a random batch, backward, and check every trainable parameter.

    Returns:
        dict: the loss dict. Raises AssertionError on a non-finite loss or a parameter without
        gradient (a dead branch DDP would need ``find_unused_parameters=True`` for).
    """
    model.train()
    num_classes = model.decode_head.num_classes
    data = model.data_preprocessor(_samples(batch, h, w, num_classes, with_gt=True), training=True)
    losses = model(**data, mode='loss')
    for name, value in losses.items():
        if 'loss' in name:
            assert torch.isfinite(value).all(), f'{name} is not finite: {value}'
    total, _ = model.parse_losses(losses)  # what the Runner's train_step does
    assert total.dim() == 0 and torch.isfinite(total) and total > 0
    model.zero_grad(set_to_none=True)
    total.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead, f'parameters without gradient: {dead}'
    return losses


def count_params(*modules: torch.nn.Module) -> int:
    """Number of parameters of the given modules."""
    return sum(p.numel() for m in modules for p in m.parameters())


def tiny_size_options(size: Tuple[int, int]) -> dict:
    """cfg-options that make the training-mode preprocessor pad to ``size`` instead of 360x480."""
    return {'model.data_preprocessor.size': size}
