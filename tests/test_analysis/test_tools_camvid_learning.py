"""tools/benchmarks/camvid_learning.py: the common budget reaches every kind of recipe.

The benchmark imposes one crop size on each config; a network that kept its recipe's
preprocessor size would train on padded batches (a silently different protocol).
"""
import os.path as osp
import types

import pytest
from mmengine.config import Config

from helpers import ROOT, load_tool

SEG = osp.join(ROOT, 'configs', 'distill', 'seg')
DML = osp.join(SEG, 'dml', 'dml_logits_fast-scnn_fast-scnn_1xb8-6k_camvid-240x320.py')
BYOT = osp.join(SEG, 'byot', 'byot_logits-feat_self_fast-scnn_1xb8-6k_camvid-240x320.py')
DIST = osp.join(SEG, 'dist', 'dist_logits_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py')
CROP = (64, 96)  # not the recipes' 240x320, so a dropped override shows


def bench_args(**kw):
    args = dict(
        crop=CROP,
        iters=10,
        warmup=2,
        batch=2,
        data_root=None,
        eval_split='val',
        teacher_config=None,
        teacher_ckpt=None,
        seed=None,
        cfg_options=[])
    args.update(kw)
    return types.SimpleNamespace(**args)


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/benchmarks/camvid_learning.py')


def build(model_cfg):
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):  # the recipes' default_scope
        return MODELS.build(model_cfg)


def built_sizes(model):
    nets = model.members if hasattr(model, 'members') else dict(student=model.student)
    return {k: tuple(net.data_preprocessor.size) for k, net in nets.items()}


def test_every_cohort_member_gets_the_crop(tool, tmp_path):
    cfg = Config.fromfile(tool.write_bench_config(DML, str(tmp_path), bench_args()))
    assert cfg.train_cfg.max_iters == 10
    assert cfg.train_dataloader.batch_size == 2
    assert 'teacher' not in cfg.model
    model = build(cfg.model)
    assert built_sizes(model) == dict(a=CROP, b=CROP)


def test_self_distillation_gets_the_crop_and_no_teacher(tool, tmp_path):
    cfg = Config.fromfile(tool.write_bench_config(BYOT, str(tmp_path), bench_args()))
    assert 'teacher' not in cfg.model
    model = build(cfg.model)
    assert model._teacher_spec is None  # student-only taps: no teacher built or wanted
    assert built_sizes(model) == dict(student=CROP)


@pytest.mark.parametrize('recipe', [BYOT, DML], ids=['self', 'online'])
def test_teacher_override_of_a_recipe_without_frozen_teacher_is_refused(tool, tmp_path, recipe):
    with pytest.raises(ValueError, match='no frozen teacher'):
        tool.write_bench_config(recipe, str(tmp_path), bench_args(teacher_ckpt='t.pth'))


def test_teacher_recipe_student_crop_and_teacher_override(tool, tmp_path):
    cfg = Config.fromfile(
        tool.write_bench_config(DIST, str(tmp_path), bench_args(teacher_ckpt='other.pth')))
    assert cfg.model.student.cfg_options['model.data_preprocessor.size'] == CROP
    assert cfg.model.teacher.checkpoint == 'other.pth'
    assert cfg.model.teacher.config  # the recipe's teacher config is kept


def test_seed_is_the_configs_unless_given(tool, tmp_path):
    own = Config.fromfile(tool.write_bench_config(DIST, str(tmp_path / 'own'), bench_args()))
    assert own.randomness.seed == Config.fromfile(DIST).randomness.seed
    cfg = Config.fromfile(tool.write_bench_config(DIST, str(tmp_path / 's'), bench_args(seed=7)))
    assert cfg.randomness.seed == 7


def test_cfg_options_reach_every_train_command(tool, tmp_path):
    opts = ['model.losses.loss_dist.loss_weight=2.0']
    cmd = tool.train_command('b.py', str(tmp_path), bench_args(cfg_options=opts))
    assert cmd[cmd.index('--cfg-options') + 1:] == opts  # and no --resume without a checkpoint
    (tmp_path / 'iter_4.pth').write_bytes(b'')
    assert tool.train_command('b.py', str(tmp_path), bench_args())[-1] == '--resume'
