"""The shipped distillation recipes (configs/distill/seg/**): parse, follow the naming scheme, and
the CamVid CWD recipe builds with the real shared teacher and takes a training step."""
from __future__ import annotations

import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

import rtkd  # noqa: F401
from test_distiller import batch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHODS = ('cwd', 'skd', 'ofd', 'nfd', 'dist', 'cirkd', 'bpkd', 'byot', 'ka', 'dml')
#: distillation models whose recipes follow the naming scheme (a KA stage 1 trains an auto-encoder)
DISTILLERS = ('Distiller', 'CohortDistiller')
RECIPES = sorted(p for m in METHODS for p in glob.glob(osp.join(ROOT, f'configs/distill/seg/{m}/*.py')))
NAME = re.compile(r'^(?P<method>[a-z0-9-]+)_(?P<where>[a-z0-9-]+)_(?P<teacher>[a-z0-9-]+)_'
                  r'(?P<student>[a-z0-9-]+)_(?P<sched>(?:\d+xb\d+-)?\d+k)_(?P<data>camvid|cityscapes)-'
                  r'\d+x\d+(?:_[a-z0-9-]+)?\.py$')
TEACHER = osp.join(ROOT, '..', 'shared', 'teachers', 'bisenetv2_camvid-240x320.pth')


def test_recipes_parse_and_follow_naming():
    assert len(RECIPES) >= 14
    methods = set()
    for path in RECIPES:
        name = osp.basename(path)
        folder = osp.basename(osp.dirname(path))
        cfg = Config.fromfile(path)
        model = cfg.model
        if model.type not in DISTILLERS:  # e.g. ka-stage1_*: no student yet
            assert name.startswith(f'{folder}-'), name
            continue
        m = NAME.match(name)
        assert m, f'{name} does not follow {{method}}_{{where}}_{{teacher}}_{{student}}_...'
        assert m['method'].split('-')[0] == folder, name
        methods.add(folder)
        for loss in model.losses.values():
            assert loss.get('student', loss.get('mutual', [None])[0]) in model.taps, name
            assert loss.get('teacher', loss.get('mutual', [None])[-1]) in model.taps, name
        if any(loss.type == 'HolisticKD' for loss in model.losses.values()):
            assert cfg.optim_wrapper.constructor == 'DistillOptimWrapperConstructor', name
        assert cfg.model_wrapper_cfg.type == 'DistillerDataParallel', name
    assert methods == set(METHODS)


@pytest.mark.skipif(not osp.isfile(TEACHER), reason='shared CamVid teacher not available')
def test_camvid_cwd_recipe_trains_a_step():
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs/distill/seg/cwd/cwd_logits_bisenetv2_fast-scnn_2k_camvid-360x480.py'))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(model.student.backbone).__name__ == 'RTFastSCNN'
    assert type(model.teacher.backbone).__name__ == 'BiSeNetV2'
    model.data_preprocessor.size = (64, 96)  # tiny crop instead of 360x480
    log = model.train_step(batch(2, 64, 96), ow)
    assert float(log['loss_cwd']) > 0 and torch.isfinite(log['loss'])
