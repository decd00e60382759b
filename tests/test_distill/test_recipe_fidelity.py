"""Recipes say what they are: loss normalisation in every config, SKD settings of the official
code, and the SKD critic's own (constant) learning rate through the real Runner."""
from __future__ import annotations

import glob
import os.path as osp
import re
import uuid

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

import rtkd  # noqa: F401
from helpers import ROOT, tiny_data_options

SEG_CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '/_base_/' not in p and '/distill/det/' not in p and '/distill/cls/' not in p)
TEACHER = osp.join(ROOT, '..', 'shared', 'teachers', 'bisenetv2_camvid-240x320.pth')


def cross_entropy_losses(cfg_dict) -> list:
    """Every ``CrossEntropyLoss`` dict inside a (model) config, recursively."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if x.get('type') == 'CrossEntropyLoss':
                found.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(cfg_dict)
    return found


def student_model(cfg: Config) -> dict:
    model = cfg.model
    if model.get('type') != 'Distiller':
        return model
    student = model.student
    path = student if isinstance(student, str) else student.get('config')
    if path is None:
        return student.get('model', student)
    from rtkd.distill.builder import load_config, resolve_config_path
    return load_config(resolve_config_path(path, 'student config')).model


def test_every_cross_entropy_averages_over_non_ignored_pixels():
    """mmseg's default (avg_non_ignore=False) divides by all pixels, void included."""
    checked = 0
    for path in SEG_CONFIGS:
        model = student_model(Config.fromfile(path))
        for loss in cross_entropy_losses(model.to_dict() if hasattr(model, 'to_dict') else model):
            assert loss.get('avg_non_ignore') is True, f'{path}: {loss}'
            checked += 1
    assert checked >= 20


def test_the_check_catches_mmseg_default(tmp_path):
    """The check above fails on a config that keeps mmseg's default."""
    p = tmp_path / 'c.py'
    p.write_text("model = dict(decode_head=dict(loss_decode=dict(type='CrossEntropyLoss')))\n")
    losses = cross_entropy_losses(Config.fromfile(str(p)).model.to_dict())
    assert losses and losses[0].get('avg_non_ignore') is not True


@pytest.mark.parametrize('name', [
    'skd/skd_logits-feat_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py',
    'skd/skd_logits-feat_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py',
    'skd/skd_logits-feat_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py'
])
def test_camvid_skd_recipes_use_the_official_settings(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/distill/seg', name))
    m = cfg.model
    assert m.taps.s_feat == 'student:decode_head.dropout#in'  # before the student's dropout
    assert m.losses.loss_pa.loss_weight == 0.5 and m.losses.loss_pa.scale == 0.5
    assert m.losses.loss_pi.reduction == 'sum_batch' and m.losses.loss_pi.loss_weight == 10.0
    assert m.losses.loss_hkd.loss_weight == 0.1
    d = cfg.optim_wrapper.discriminator.optimizer
    assert (d.type, d.lr) == ('SGD', 4e-4)
    # one schedule per optimizer: the student's poly decay does not reach the critic
    assert set(cfg.param_scheduler) == {'student', 'discriminator'}
    assert [(s.type, s.factor) for s in cfg.param_scheduler.discriminator] == [('ConstantLR', 1.0)]


OFD_RECIPES = sorted(glob.glob(osp.join(ROOT, 'configs', 'distill', 'seg', 'ofd', '*.py')))


@pytest.mark.parametrize('path', OFD_RECIPES, ids=osp.basename)
def test_ofd_recipes_use_the_official_segmentation_settings(path):
    """clovaai/overhaul-distillation, Segmentation/: sum / batch x 1e-5 with the decoder
    feature's divider 16, connectors normal(0, sqrt(2/out)) at 10x lr, and a first epoch that
    steps only the connectors (the student in train mode)."""
    cfg = Config.fromfile(path)
    m = cfg.model
    assert m.losses.loss_ofd.loss_weight == pytest.approx(1e-5 / 16)
    assert m.losses.loss_ofd.get('normalize', 'batch') == 'batch'
    assert m.connectors.s_feat.init == 'kaiming_fan_out'
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.connectors.lr_mult == 10.0
    fs = m.freeze_student
    assert fs.modules == [''] and fs.norm_eval is False
    gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)-', osp.basename(path)).groups())
    assert per_gpu == cfg.train_dataloader.batch_size, path  # the name states the batch
    images = {'camvid': 367, 'cityscapes': 2975}['camvid' if 'camvid' in path else 'cityscapes']
    assert fs.iters == -(-images // (per_gpu * gpus)), (fs.iters, per_gpu, gpus)  # one epoch


FGFI_RECIPES = sorted(glob.glob(osp.join(ROOT, 'configs', 'distill', 'det', 'fgfi', '*.py')))


@pytest.mark.parametrize('path', FGFI_RECIPES, ids=osp.basename)
def test_fgfi_recipes_use_the_official_adapter_init_and_warm_up(path):
    """twangnh/Distilling-Object-Detectors, trainval_net_sup.py: adaptation conv from a
    truncated normal with std 1e-4, no imitation in the first 400 iterations (--ws 400),
    imitation weight 0.01 (--ilw), psi 0.5."""
    from rtkd.distill import build_schedule
    loss = Config.fromfile(path).model.losses.loss_fgfi
    assert loss.adapter_init_std == 1e-4 and loss.loss_weight == 0.01 and loss.psi == 0.5
    sched = build_schedule(loss.schedule)
    assert [sched(i) for i in (0, 399, 400, 90000)] == [0, 0, 1, 1]


@pytest.mark.skipif(not osp.isfile(TEACHER), reason='shared CamVid teacher not available')
def test_ofd_connectors_get_ten_times_the_student_lr():
    """The paramwise key reaches the connector parameters of the built distiller."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(
        osp.join(
            ROOT, 'configs/distill/seg/ofd/'
            'ofd_head-feat_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
    conn = {id(p) for p in model.connectors.parameters()}
    lrs = {
        ('conn' if id(p) in conn else 'other'): g['lr']
        for g in ow.optimizer.param_groups
        for p in g['params']
    }
    assert lrs == {'conn': pytest.approx(0.45), 'other': pytest.approx(0.045)}


@pytest.mark.skipif(not osp.isfile(TEACHER), reason='shared CamVid teacher not available')
def test_skd_critic_lr_stays_constant_while_student_decays(tmp_path, tiny_camvid):
    """mmengine applies a list-form scheduler to every wrapper of an OptimWrapperDict."""
    cfg = Config.fromfile(
        osp.join(
            ROOT, 'configs/distill/seg/skd/'
            'skd_logits-feat_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py'))
    cfg.merge_from_dict(tiny_data_options(tiny_camvid))
    cfg.merge_from_dict({
        'train_cfg.max_iters':
        3,
        'train_cfg.val_interval':
        100,
        'param_scheduler.student.0.end':
        3,
        'default_hooks.checkpoint.interval':
        100,
        'train_dataloader.dataset.pipeline.3.crop_size': (32, 48),
        'model.student':
        dict(
            _delete_=True,
            config='configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py',
            cfg_options={'model.data_preprocessor.size': (32, 48)})
    })
    cfg.custom_hooks = []
    cfg.work_dir = str(tmp_path / 'w')
    cfg.visualizer.name = f'vis_{uuid.uuid4().hex}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    ow = runner.optim_wrapper
    assert ow['discriminator'].get_lr()['lr'] == [4e-4]
    assert ow['student'].get_lr()['lr'][0] < 0.045 * 0.5
