"""Tests of the task-agnostic Distiller (taps, connectors, schedules, freezing, teacher handling).

Tiny mmseg models (ResNetV1c-18 with 4-8 base channels + FCN heads) built from dicts, 32x48
inputs. Runner-level tests (train/test/resume/export/DDP) are in test_distiller_runner.py.
"""
from __future__ import annotations

import collections
import copy
import itertools
import os.path as osp
from types import SimpleNamespace
from typing import Optional

import pytest
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.registry import MODELS, DefaultScope

import rtkd  # noqa: F401  (registers everything)
from rtkd.distill import (Distiller, DistillOptimWrapperConstructor, LossSchedule, TapSet, TapSpec,
                          build_schedule)
from rtkd.distill import distiller as distiller_module
from rtkd.distill.losses.base import AdversarialDistillLoss
from rtkd.distill.taps import TeacherDone
from rtkd.engine.hooks import NonFiniteLossHook
from helpers import DP, ROOT, PlainMSE, batch, seg_model


@MODELS.register_module(name='_TestNaNLoss', force=True)
class _TestNaNLoss(PlainMSE):
    """Returns NaN from the second call on."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.calls = 0

    def forward(self, student, teacher, **extra):
        self.calls += 1
        out = super().forward(student, teacher)
        return out * float('nan') if self.calls > 1 else out


@pytest.fixture(scope='module')
def teacher_files(tmp_path_factory):
    """A tiny teacher config file + checkpoint (mmseg scope)."""
    root = tmp_path_factory.mktemp('teacher')
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmseg'\nmodel = {seg_model(8)!r}\n")
    with DefaultScope.overwrite_default_scope('mmseg'):
        teacher = MODELS.build(seg_model(8))
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    return cfg_path, ckpt


def make_distiller(teacher_files, **overrides) -> Distiller:
    cfg_path, ckpt = teacher_files
    cfg = dict(
        type='Distiller',
        student=dict(model=seg_model(4, aux=True), scope='mmseg'),
        teacher=dict(config=cfg_path, checkpoint=ckpt),
        taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
        losses=dict(
            loss_cwd=dict(
                type='ChannelWiseKD',
                tau=4.0,
                loss_weight=3.0,
                student='s_logits',
                teacher='t_logits')))
    cfg.update(overrides)
    return MODELS.build(cfg)


def sgd(model, lr=0.01):
    return OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))


# ---------------------------------------------------------------------------------------------
def test_tap_syntax():
    s = TapSpec.parse('a', 'teacher:backbone[2]')
    assert (s.side, s.module, s.use_input, s.index) == ('teacher', 'backbone', False, (2, ))
    s = TapSpec.parse('b', 'student:decode_head.conv_seg#in')
    assert (s.module, s.use_input, s.index) == ('decode_head.conv_seg', True, (0, ))
    s = TapSpec.parse('c', 'teacher:neck#out[0][-1]')
    assert (s.use_input, s.index) == (False, (0, -1))
    s = TapSpec.parse('d', 'teacher:bbox_head.cls_convs.0@2')
    assert (s.module, s.call, s.use_input, s.index) == ('bbox_head.cls_convs.0', 2, False, ())
    s = TapSpec.parse('e', 'student:backbone.layer1.0.relu@-1#in')
    assert (s.module, s.call, s.use_input, s.index) == ('backbone.layer1.0.relu', -1, True, (0, ))
    s = TapSpec.parse('f', 'teacher:rpn_head.rpn_conv@*#out[0]')
    assert (s.call, s.index, s.needs_all_calls) == ('*', (0, ), True)
    assert s.with_call(1) == 'teacher:rpn_head.rpn_conv@1#out[0]'
    assert TapSpec.parse('g', 'teacher:neck').call is None
    for bad in ('decode_head.conv_seg', 'pupil:backbone', 'student:backbone#sideways',
                'student:backbone[x]', 'student:backbone@', 'student:backbone@x',
                'student:backbone#in@0', 'student:backbone@1@2'):
        with pytest.raises(ValueError, match='is not valid'):
            TapSpec.parse('x', bad)


def test_build_errors(teacher_files, tmp_path):
    with pytest.raises(KeyError, match=r"no module 'decode_head.conv_sge'.*decode_head.conv_seg"):
        make_distiller(
            teacher_files,
            taps=dict(
                s_logits='student:decode_head.conv_sge', t_logits='teacher:decode_head.conv_seg'))
    with pytest.raises(KeyError, match=r"teacher has no module 'backbone.layer5'.*backbone.layer"):
        make_distiller(
            teacher_files,
            taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:backbone.layer5'))
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='teacher checkpoint not found: .*nope.pth'):
        make_distiller(teacher_files, teacher=dict(config=teacher_files[0], checkpoint=missing))
    wrong = str(tmp_path / 'wrong.pth')
    torch.save(dict(state_dict={'foo.weight': torch.zeros(1)}), wrong)
    with pytest.raises(ValueError, match=r'matches only 0 of the \d+ required model entries'):
        make_distiller(teacher_files, teacher=dict(config=teacher_files[0], checkpoint=wrong))
    with pytest.raises(ValueError, match='teacher needs weights'):
        make_distiller(teacher_files, teacher=dict(config=teacher_files[0]))
    with pytest.raises(FileNotFoundError, match='teacher config not found'):
        make_distiller(teacher_files, teacher=dict(config='nowhere/t.py', checkpoint=None))
    with pytest.raises(KeyError, match=r"maps teacher='t_feat', which is not a tap"):
        make_distiller(
            teacher_files,
            losses=dict(loss_x=dict(type='_TestMSE', student='s_logits', teacher='t_feat')))
    with pytest.raises(ValueError, match="must contain 'loss'"):
        make_distiller(
            teacher_files,
            losses=dict(cwd=dict(type='_TestMSE', student='s_logits', teacher='t_logits')))
    with pytest.raises(KeyError, match='is not a tap'):
        make_distiller(teacher_files, connectors=dict(s_x=dict(type='ResizeConnector', like='t')))
    with pytest.raises(
            ValueError,
            match="connector on tap 't_logits' has trainable parameters, "
            'but the tap belongs to the frozen teacher'):
        make_distiller(
            teacher_files,
            connectors=dict(t_logits=dict(type='ConvBNConnector', in_channels=11, out_channels=11)))
    with pytest.raises(ValueError, match="connector on tap 's_logits' is not used by any loss"):
        make_distiller(
            teacher_files,
            taps=dict(
                s_logits='student:decode_head.conv_seg',
                s2='student:decode_head.conv_seg',
                t_logits='teacher:decode_head.conv_seg'),
            losses=dict(loss_x=dict(type='_TestMSE', student='s2', teacher='t_logits')),
            connectors=dict(s_logits=dict(type='ResizeConnector', like='t_logits')))
    with pytest.raises(KeyError, match="refers to like='t', which is not a tap"):
        make_distiller(
            teacher_files, connectors=dict(s_logits=dict(type='ResizeConnector', like='t')))


def test_channel_mismatch_names_the_connector(teacher_files):
    taps = dict(s_feat='student:backbone[3]', t_feat='teacher:backbone[3]')
    losses = dict(loss_fit=dict(type='FitNetsLoss', student='s_feat', teacher='t_feat'))
    model = make_distiller(teacher_files, taps=taps, losses=losses)
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(
            ValueError,
            match=r"add connectors=dict\(s_feat=dict\(type='ConvBNConnector'"
            r', in_channels=32, out_channels=64\)\)'):
        model.loss(**data)
    model = make_distiller(
        teacher_files,
        taps=taps,
        losses=losses,
        connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=32, out_channels=64)))
    out = model.loss(**data)
    assert out['loss_fit'].requires_grad and 'decode.loss_ce' in out and 'aux.loss_ce' in out


def test_teacher_frozen_eval_hidden_and_taps_inactive(teacher_files):
    model = make_distiller(teacher_files)
    teacher = model.teacher
    model.train()
    assert model.student.training and not teacher.training
    assert not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not any(k.startswith('teacher') or '_teacher' in k for k in model.state_dict())
    ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in ids for p in teacher.parameters())
    assert 'distill_iter' in model.state_dict()

    calls = []
    h = teacher.register_forward_pre_hook(lambda *a: calls.append(1))
    before = copy.deepcopy(teacher.state_dict())
    ow = sgd(model)
    log = model.train_step(batch(), ow)
    assert {'loss', 'decode.loss_ce', 'aux.loss_ce', 'loss_cwd'} <= set(log)
    assert float(log['loss_cwd']) > 0
    # (that no gradient reaches the teacher is tested with trainable teacher parameters in
    # test_teacher_gets_no_gradient_even_if_not_frozen: here requires_grad=False guarantees it)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k  # no BN statistic update, no weight change
    assert int(model.distill_iter) == 1

    # predict / tensor: student only, taps silent
    model.eval()
    calls.clear()
    data = model.data_preprocessor(batch(), False)
    with torch.no_grad():
        preds = model(**data, mode='predict')
        model(**data, mode='tensor')
    assert len(preds) == 2 and preds[0].pred_sem_seg.data.shape[-2:] == (32, 48)
    assert calls == [] and model._taps['student'].records == {}
    h.remove()


@MODELS.register_module(name='_TestUndetachedMSE', force=True)
class _TestUndetachedMSE(PlainMSE):
    """MSE that does not detach the teacher (gradients would flow into it)."""

    def forward(self, student, teacher, **extra):
        return ((student - teacher)**2).mean() * self.loss_weight


def test_teacher_gets_no_gradient_even_if_not_frozen(teacher_files):
    """The teacher runs under no_grad: even with trainable parameters (a freezing that was
    missed) and a loss that does not detach it, no gradient reaches it."""
    model = make_distiller(
        teacher_files,
        losses=dict(
            loss_mse=dict(type='_TestUndetachedMSE', student='s_logits', teacher='t_logits')))
    teacher = model.teacher
    for p in teacher.parameters():
        p.requires_grad_(True)
    head = model.student.decode_head.conv_seg.weight.detach().clone()
    log = model.train_step(batch(), sgd(model))
    assert float(log['loss_mse']) > 0
    assert not torch.equal(head, model.student.decode_head.conv_seg.weight)  # student trained
    assert all(p.grad is None for p in teacher.parameters())
    rec = model._run_teacher(model.data_preprocessor(batch(), True)['inputs'], None)
    assert not rec['t_logits'].requires_grad


def test_teacher_runs_only_as_far_as_needed(teacher_files):
    model = make_distiller(
        teacher_files,
        taps=dict(s_feat='student:backbone[3]', t_feat='teacher:backbone[3]'),
        connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=32, out_channels=64)),
        losses=dict(loss_nfd=dict(type='NFDLoss', student='s_feat', teacher='t_feat')))
    head_calls = []
    # (mmseg's tensor mode calls decode_head.forward directly, so a hook on decode_head never
    # fires: hook its classifier)
    model.teacher.decode_head.conv_seg.register_forward_hook(lambda *a: head_calls.append(1))
    data = model.data_preprocessor(batch(), True)
    model.loss(**data)
    assert head_calls == [1]  # the first forward runs to the end, counting calls per module
    model.loss(**data)
    model.loss(**data)
    assert head_calls == [1]  # then the teacher stops once backbone[3] is out


def test_input_tap_and_resize_connector(teacher_files):
    model = make_distiller(
        teacher_files,
        taps=dict(s_in='student:decode_head.conv_seg#in', t_feat='teacher:backbone[3]'),
        connectors=dict(s_in=[
            dict(type='ConvBNConnector', in_channels=8, out_channels=64),
            dict(type='ResizeConnector', size=(2, 3))
        ]),
        losses=dict(loss_at=dict(type='_TestMSE', student='s_in', teacher='t_feat')))
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(ValueError, match=r"ResizeConnector', like='t_feat'"):
        model.loss(**data)


def test_schedules():
    s = LossSchedule(warmup_iters=10, decay_begin=20, decay_end=30, end_factor=0.5, stop_iter=40)
    assert [s(i) for i in (0, 5, 10, 20, 25, 30, 39, 40)] == [0, 0.5, 1, 1, 0.75, 0.5, 0.5, 0]
    assert LossSchedule(stop_epoch=2)(100, epoch=1) == 1 and LossSchedule(stop_epoch=2)(0, 2) == 0
    # a hard start (FGFI: no imitation before iteration 400); a ramp counts from the start
    assert [LossSchedule(start_iter=4)(i) for i in (0, 3, 4, 9)] == [0, 0, 1, 1]
    ramp = LossSchedule(start_iter=4, warmup_iters=2)
    assert [ramp(i) for i in (3, 4, 5, 6, 7)] == [0, 0, 0.5, 1, 1]
    with pytest.raises(ValueError, match='start_iter must be >= 0'):
        LossSchedule(start_iter=-1)
    with pytest.raises(TypeError, match='valid keys'):
        build_schedule(dict(warmup=3))
    with pytest.raises(ValueError, match='decay_begin and decay_end'):
        LossSchedule(decay_begin=3)


def test_documented_schedule_keys_exist():
    """Every ``schedule=dict(...)`` the README and the schedules module document uses real
    LossSchedule keywords (the README once listed a ``decay_to`` that build_schedule rejects)."""
    import inspect
    import re
    valid = set(inspect.signature(LossSchedule).parameters)
    found = 0
    for doc in ('README.md', 'rtkd/distill/schedules.py'):
        text = open(osp.join(ROOT, doc)).read()
        for args in re.findall(r'schedule=dict\(([^)]*)\)', text):
            keys = set(re.findall(r'(\w+)\s*=', args))
            assert keys <= valid, (doc, keys - valid)
            found += bool(keys)
    assert found >= 2


def test_schedule_in_distiller_and_state(teacher_files):
    model = make_distiller(
        teacher_files,
        losses=dict(
            loss_cwd=dict(
                type='ChannelWiseKD',
                tau=4.0,
                loss_weight=3.0,
                student='s_logits',
                teacher='t_logits',
                schedule=dict(warmup_iters=2, stop_iter=3))))
    calls = []
    model.teacher.register_forward_pre_hook(lambda *a: calls.append(1))
    ow = sgd(model)
    vals = [float(model.train_step(batch(seed=i), ow)['loss_cwd']) for i in range(4)]
    assert vals[0] == 0 and vals[1] > 0 and vals[2] > 0 and vals[3] == 0
    assert len(calls) == 2  # the teacher does not run while every loss is switched off
    assert int(model.distill_iter) == 4
    # the counter is a checkpointed buffer: a fresh distiller resumes the schedule
    fresh = make_distiller(teacher_files, losses=model_losses_with_schedule())
    fresh.load_state_dict(model.state_dict())
    assert int(fresh.distill_iter) == 4 and fresh._factor('loss_cwd', 4, 0) == 0


def model_losses_with_schedule():
    return dict(
        loss_cwd=dict(
            type='ChannelWiseKD',
            tau=4.0,
            loss_weight=3.0,
            student='s_logits',
            teacher='t_logits',
            schedule=dict(warmup_iters=2, stop_iter=3)))


def test_freeze_student(teacher_files):
    model = make_distiller(teacher_files, freeze_student=dict(modules=['backbone'], iters=1))
    ow = sgd(model, lr=0.1)
    bb = copy.deepcopy(model.student.backbone.state_dict())
    head = copy.deepcopy(model.student.decode_head.conv_seg.weight.detach())
    model.train()
    model.train_step(batch(), ow)
    for k, v in model.student.backbone.state_dict().items():
        assert torch.equal(v, bb[k]), k  # weights and BN statistics untouched
    assert not torch.equal(head, model.student.decode_head.conv_seg.weight)
    model.train_step(batch(seed=1), ow)
    assert not torch.equal(bb['stem.0.weight'], model.student.backbone.stem[0].weight)
    assert model.student.backbone.training
    with pytest.raises(KeyError, match="no module 'bakbone'"):
        make_distiller(teacher_files, freeze_student=dict(modules=['bakbone'], iters=1))


def test_connector_only_warmup_keeps_student_weights_and_updates_its_bn(teacher_files):
    """OFD's official first epoch: ``modules=['']`` freezes the whole student, only the
    connectors learn; ``norm_eval=False`` keeps the student in train mode, so its BN statistics
    still move, as they do in the official code."""
    model = make_distiller(
        teacher_files,
        freeze_student=dict(modules=[''], iters=1, norm_eval=False),
        connectors=dict(s_logits=dict(type='ConvBNConnector', in_channels=11, out_channels=11)))
    ow = sgd(model, lr=0.1)
    params = {k: v.detach().clone() for k, v in model.student.named_parameters()}
    stats = {k: v.clone() for k, v in model.student.named_buffers() if 'running_mean' in k}
    conn = model.connectors['s_logits'][0].conv.weight.detach().clone()
    model.train()
    model.train_step(batch(), ow)
    for k, v in model.student.named_parameters():
        assert torch.equal(v, params[k]), k
    assert all(m.training for m in model.student.modules())
    moved = [
        k for k, v in model.student.named_buffers() if k in stats and not torch.equal(v, stats[k])
    ]
    assert moved, 'BN statistics must keep updating with norm_eval=False'
    assert not torch.equal(conn, model.connectors['s_logits'][0].conv.weight)
    model.train_step(batch(seed=1), ow)
    assert not torch.equal(params['decode_head.conv_seg.weight'],
                           model.student.decode_head.conv_seg.weight)
    with pytest.raises(ValueError, match='norm_eval=True'):
        make_distiller(teacher_files, freeze_student=dict(modules=[''], iters=1, norm_evl=False))


def test_conv_bn_connector_ofd_init():
    """``init='kaiming_fan_out'``: normal, std sqrt(2 / (k*k*out)) as the official OFD code;
    the default stays PyTorch's (a visibly different spread)."""
    torch.manual_seed(0)
    ofd = MODELS.build(
        dict(type='ConvBNConnector', in_channels=64, out_channels=256, init='kaiming_fan_out'))
    default = MODELS.build(dict(type='ConvBNConnector', in_channels=64, out_channels=256))
    want = (2.0 / 256)**0.5
    assert abs(float(ofd.conv.weight.std()) - want) < 0.03 * want
    assert abs(float(default.conv.weight.std()) - want) > 0.1 * want
    assert torch.equal(ofd.bn.weight, torch.ones(256))
    assert torch.equal(ofd.bn.bias, torch.zeros(256))
    with pytest.raises(ValueError, match="init must be one of"):
        MODELS.build(dict(type='ConvBNConnector', in_channels=4, out_channels=8, init='xavier'))


def test_non_finite_losses_are_left_to_the_hook(teacher_files, monkeypatch):
    """No finiteness check (device sync) per loss in the distiller; NonFiniteLossHook, which
    checks every logged loss once per step, names the distillation loss."""
    model = make_distiller(
        teacher_files,
        losses=dict(loss_bad=dict(type='_TestNaNLoss', student='s_logits', teacher='t_logits')))
    ow = sgd(model)
    hook = NonFiniteLossHook()
    hook.after_train_iter(SimpleNamespace(iter=0), 0, outputs=model.train_step(batch(), ow))
    checks = []
    isfinite = torch.isfinite
    monkeypatch.setattr(torch, 'isfinite', lambda *a, **k: checks.append(1) or isfinite(*a, **k))
    log = model.train_step(batch(), ow)  # NaN now: the distiller neither syncs nor raises
    monkeypatch.undo()
    assert checks == [] and torch.isnan(log['loss_bad'])
    with pytest.raises(FloatingPointError, match=r'non-finite loss at iteration 2: loss_bad=nan'):
        hook.after_train_iter(SimpleNamespace(iter=1), 1, outputs=log)


NORM_S = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
NORM_T = dict(mean=[100.0, 110.0, 130.0], std=[40.0, 60.0, 80.0])  # asymmetric: order shows


@pytest.mark.parametrize('s_norm,s_rgb,t_norm,t_rgb',
                         list(itertools.product((True, False), repeat=4)))
def test_teacher_sees_what_its_own_preprocessor_makes(s_norm, s_rgb, t_norm, t_rgb):
    """RGB/BGR x normalised/raw on each side: the teacher's input equals its own data
    preprocessor applied to the raw batch (a side without mean/std counts as mean 0 / std 1)."""

    def model(base: int, norm: Optional[dict], rgb: bool) -> dict:
        pre = dict(DP, bgr_to_rgb=rgb, **(norm or dict(mean=None, std=None)))
        return dict(seg_model(base), data_preprocessor=pre)

    distiller = MODELS.build(
        dict(
            type='Distiller',
            student=dict(model=model(4, NORM_S if s_norm else None, s_rgb), scope='mmseg'),
            teacher=dict(
                model=model(8, NORM_T if t_norm else None, t_rgb), scope='mmseg', checkpoint=None),
            taps=dict(
                s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
            losses=dict(
                loss_cwd=dict(type='ChannelWiseKD', student='s_logits', teacher='t_logits'))))
    assert distiller.data_preprocessor._enable_normalize is s_norm
    assert distiller.teacher.data_preprocessor._enable_normalize is t_norm
    seen = []
    distiller.teacher.backbone.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    distiller.loss(**distiller.data_preprocessor(batch(), True))
    expected = distiller.teacher.data_preprocessor(batch(), True)['inputs']
    assert torch.allclose(seen[0], expected, rtol=1e-5, atol=1e-4), \
        (seen[0] - expected).abs().max()


def test_adversarial_loss_extras_and_optimizer_check(teacher_files):
    # extra_inputs: HolisticKD reads 'inputs' and 'data_samples' without any config entry
    model = make_distiller(
        teacher_files,
        losses=dict(
            loss_hkd=dict(
                type='HolisticKD',
                num_classes=11,
                num_convs=2,
                base_channels=8,
                loss_weight=0.1,
                student='s_logits',
                teacher='t_logits')))
    assert model.adversarial_losses == ['loss_hkd']
    assert model.loss_maps['loss_hkd']['extras'] == {
        'inputs': 'inputs',
        'data_samples': 'data_samples'
    }
    assert all('.discriminator.' in f'.{n}' for n in model._ddp_params_and_buffers_to_ignore)
    with pytest.raises(ValueError, match='train a discriminator'):
        model.train_step(batch(), sgd(model))


def test_student_initialised_from_its_checkpoint(teacher_files, tmp_path):
    with DefaultScope.overwrite_default_scope('mmseg'):
        student = MODELS.build(seg_model(4, aux=True))
    path = str(tmp_path / 'student.pth')
    torch.save(dict(state_dict=student.state_dict()), path)
    model = make_distiller(
        teacher_files, student=dict(model=seg_model(4, aux=True), scope='mmseg', checkpoint=path))
    model.init_weights()  # what the Runner does; must not overwrite the student's weights
    for k, v in student.state_dict().items():
        assert torch.equal(model.student.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match='student checkpoint not found'):
        make_distiller(
            teacher_files,
            student=dict(model=seg_model(4), scope='mmseg', checkpoint=str(tmp_path / 'x.pth')))


def test_unreachable_teacher_url_is_clear(teacher_files):
    """A teacher checkpoint URL that cannot be fetched fails with what to do instead
    (loopback port 9: the connection is refused at once, no traffic leaves the machine)."""
    url = 'http://127.0.0.1:9/teacher.pth'
    with pytest.raises(RuntimeError, match='cannot download the teacher checkpoint.*local file'):
        make_distiller(teacher_files, teacher=dict(config=teacher_files[0], checkpoint=url))


def test_channel_order_flag_of_every_toolbox():
    """mmseg/mmdet preprocessors say `_channel_conversion`, mmpretrain's says `to_rgb`."""
    from mmpretrain.models.utils import ClsDataPreprocessor as ClsDataPreProcessor
    from mmseg.models import SegDataPreProcessor

    from rtkd.distill.teacher import bgr_to_rgb as _bgr_to_rgb
    assert _bgr_to_rgb(ClsDataPreProcessor(to_rgb=True)) is True
    assert _bgr_to_rgb(ClsDataPreProcessor(to_rgb=False)) is False
    assert _bgr_to_rgb(SegDataPreProcessor(bgr_to_rgb=True)) is True
    assert _bgr_to_rgb(SegDataPreProcessor(bgr_to_rgb=False)) is False
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    assert _bgr_to_rgb(DetDataPreprocessor(bgr_to_rgb=True)) is True


# --------------------------------------------------------------------- modules called twice
RELU = 'backbone.layer4.1.relu'  # mmseg's BasicBlock.relu: after bn1, then after the residual sum


def test_module_called_twice_needs_a_call_selection(teacher_files):
    """A tap on a module that runs twice is refused (student and teacher, early stop on) with
    the call count and the syntax to pick a call."""
    data = make_distiller(teacher_files).data_preprocessor(batch(), True)
    model = make_distiller(
        teacher_files,
        taps=dict(s=f'student:{RELU}', t=f'teacher:{RELU}@1'),
        losses=dict(loss_x=dict(type='_TestMSE', student='s', teacher='t')))
    with pytest.raises(
            ValueError,
            match=(
                r"tap 's' = 'student:backbone.layer4.1.relu' is ambiguous: module "
                r"'backbone.layer4.1.relu' is called 2 times per student forward; select one call "
                r"with @<call> \(0..1, e.g. 'student:backbone.layer4.1.relu@0', @-1 for the last\) "
                r"or all of them as a list with 'student:backbone.layer4.1.relu@\*'")):
        model.loss(**data)
    model = make_distiller(
        teacher_files,
        taps=dict(s=f'student:{RELU}@1', t=f'teacher:{RELU}'),
        losses=dict(loss_x=dict(type='_TestMSE', student='s', teacher='t')))
    assert model._taps['teacher'].stop_when_done
    with pytest.raises(
            ValueError,
            match=r"'teacher:backbone.layer4.1.relu' is ambiguous: .*"
            r'is called 2 times per teacher forward'):
        model.loss(**data)
    model = make_distiller(
        teacher_files,
        taps=dict(s=f'student:{RELU}@1', t=f'teacher:{RELU}@2'),
        losses=dict(loss_x=dict(type='_TestMSE', student='s', teacher='t')))
    with pytest.raises(
            ValueError,
            match=r"selects call 2 but module 'backbone.layer4.1.relu' is "
            r'called 2 times per teacher forward; select a call in '
            r'-2..1'):
        model.loss(**data)


def test_call_selection_records_the_selected_call(teacher_files):
    taps = dict(
        s=f'student:{RELU}@-1',
        t0=f'teacher:{RELU}@0',
        t1=f'teacher:{RELU}@1',
        t_last=f'teacher:{RELU}@-1',
        t_all=f'teacher:{RELU}@*',
        t_bn1='teacher:backbone.layer4.1.bn1')
    model = make_distiller(
        teacher_files,
        taps=taps,
        connectors=dict(s=dict(type='ConvBNConnector', in_channels=32, out_channels=64)),
        losses=dict(loss_x=dict(type='_TestMSE', student='s', teacher='t1')))
    data = model.data_preprocessor(batch(), True)
    x = data['inputs']  # same preprocessing on both sides: the teacher sees x as is
    ref = {}
    block = model.teacher.backbone.layer4[1]
    h = block.register_forward_hook(lambda m, a, out: ref.update(out=out.clone()))
    with torch.no_grad():
        model.teacher.backbone(x)
    h.remove()
    rec = model._run_teacher(x, None)
    assert torch.equal(rec['t1'], ref['out']) and torch.equal(rec['t_last'], ref['out'])
    assert torch.equal(rec['t0'], torch.relu(rec['t_bn1']))  # first call: right after bn1
    assert not torch.equal(rec['t0'], rec['t1'])
    assert isinstance(rec['t_all'], list) and len(rec['t_all']) == 2
    assert torch.equal(rec['t_all'][0], rec['t0']) and torch.equal(rec['t_all'][1], rec['t1'])
    # the student's last call (the block output) is what the loss gets
    seen = {}
    model.student.backbone.layer4[1].register_forward_hook(
        lambda m, a, out: seen.update(out=out.detach().clone()))
    with model._taps['student'].recording() as s_rec:
        model.student.loss(x, data['data_samples'])
    assert torch.equal(s_rec['s'].detach(), seen['out'])
    assert float(model.loss(**data)['loss_x']) > 0


def test_early_stop_counts_calls(teacher_files):
    """With early stop the teacher stops right after the selected call, not at the first one;
    a tap without '@' lets the first forward run to its end (to count calls), later ones stop."""
    mse = dict(loss_x=dict(type='_TestMSE', student='s', teacher='t'))
    model = make_distiller(
        teacher_files,
        taps=dict(s='student:decode_head.conv_seg', t='teacher:backbone.layer3.0.relu@1'),
        losses=mse)
    teacher = model.teacher
    calls = collections.Counter()
    for name in ('backbone.layer3.0.conv2', 'backbone.layer3.1', 'decode_head.conv_seg'):
        teacher.get_submodule(name).register_forward_pre_hook(
            lambda m, a, n=name: calls.update([n]))
    x = model.data_preprocessor(batch(), True)['inputs']
    rec = model._run_teacher(x, None)
    # stopped inside layer3.0, at the second relu call (after conv2), before layer3.1
    assert calls == {'backbone.layer3.0.conv2': 1}
    ref = {}
    h = teacher.backbone.layer3[0].register_forward_hook(lambda m, a, o: ref.update(out=o))
    with torch.no_grad():
        teacher.backbone(x)
    h.remove()
    assert torch.equal(rec['t'], ref['out'])

    model = make_distiller(
        teacher_files,
        taps=dict(s='student:decode_head.conv_seg', t='teacher:backbone.layer2'),
        losses=mse)
    calls.clear()
    # (mmseg's tensor mode calls decode_head.forward directly: hook a submodule)
    model.teacher.decode_head.conv_seg.register_forward_pre_hook(
        lambda m, a: calls.update(['head']))
    model._run_teacher(x, None)
    assert calls['head'] == 1  # first forward: to the end, counting calls
    model._run_teacher(x, None)
    assert calls['head'] == 1  # then: cut short after backbone.layer2


def test_teacher_done_is_not_swallowed_by_except_exception(teacher_files):
    model = make_distiller(
        teacher_files,
        taps=dict(s='student:decode_head.conv_seg', t='teacher:backbone.layer2'),
        losses=dict(loss_x=dict(type='_TestMSE', student='s', teacher='t')))
    caught = []
    backbone = model.teacher.backbone
    forward = backbone.forward

    def guarded(*args, **kwargs):  # model code with a fallback path
        try:
            return forward(*args, **kwargs)
        except Exception:
            caught.append(1)
            raise

    backbone.forward = guarded
    head_calls = []
    model.teacher.decode_head.conv_seg.register_forward_pre_hook(lambda *a: head_calls.append(1))
    x = model.data_preprocessor(batch(), True)['inputs']
    for _ in range(2):  # the first forward runs to the end (counting calls), the second stops
        rec = model._run_teacher(x, None)
    assert 't' in rec and caught == [] and len(head_calls) <= 1
    assert not issubclass(TeacherDone, Exception)


class _PairThenInPlace(nn.Module):
    """Returns a tuple holding a tensor and a list; the caller then changes both in place."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = nn.Identity()
        self.pair.forward = lambda x: (x * 1, [x * 2])

    def forward(self, x):
        a, rest = self.pair(x)
        a.add_(100)
        rest[0].mul_(0)
        return a + rest[0]


def test_tuple_and_list_outputs_are_protected_from_in_place_changes():
    model = _PairThenInPlace()
    taps = TapSet(model, [TapSpec.parse('t', 'student:pair')], 'student')
    x = torch.randn(2, 3)
    with taps.recording() as rec:
        model(x)
    a, rest = rec['t']
    assert torch.equal(a, x) and isinstance(rest, list) and torch.equal(rest[0], 2 * x)


def test_deepcopy_records_into_the_copy_and_shares_the_teacher(teacher_files):
    """EMA/SWA wrappers deep-copy the model: the copy's taps fire and the teacher is shared."""
    model = make_distiller(teacher_files)
    clone = copy.deepcopy(model)
    assert clone.teacher is model.teacher and clone._taps['teacher'] is model._taps['teacher']
    assert clone.student is not model.student
    model.eval()
    clone.eval()  # no dropout: the same batch gives the same loss
    data = model.data_preprocessor(batch(), True)
    a = model.loss(**data)['loss_cwd']
    b = clone.loss(**data)['loss_cwd']
    assert float(a) > 0 and torch.allclose(a, b)
    with torch.no_grad():  # the copy's hooks record the copy's own student
        clone.student.decode_head.conv_seg.weight.mul_(3)
    assert not torch.allclose(clone.loss(**data)['loss_cwd'], a)
    assert torch.allclose(model.loss(**data)['loss_cwd'], a)
    clone._taps['student'].remove()  # removes the copy's hooks, not the original's
    assert model.student.decode_head.conv_seg._forward_hooks
    assert not clone.student.decode_head.conv_seg._forward_hooks


# --------------------------------------------------------------------- critics
@MODELS.register_module(name='_TestAdversarial', force=True)
class _TestAdversarial(AdversarialDistillLoss):  # adversarial by its class, not by probing
    """A linear critic on the logits; its generator loss leaves gradients on the critic (as a
    careless adversarial loss would), and its critic loss is deterministic."""

    extra_inputs = ()

    def __init__(self, channels: int = 11) -> None:
        super().__init__()
        self.discriminator = nn.Conv2d(channels, 1, 1)

    def forward(self, student, teacher, **extra):
        return -self.discriminator(student).mean()

    def discriminator_loss(self, student, teacher, **extra):
        return self.discriminator(student.detach()).mean() - \
            self.discriminator(teacher.detach()).mean()


def adversarial_wrappers(model, critic_lr: float = 0.01, **critic_kw):
    return DistillOptimWrapperConstructor(
        dict(
            student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)),
            discriminator=dict(
                type='OptimWrapper', optimizer=dict(type='SGD', lr=critic_lr), **critic_kw)))(
                    model)


def test_critic_step_honours_gradient_accumulation(teacher_files):
    """accumulative_counts=2: no critic update after the first step; after the second, one SGD
    step on the mean of both critic-loss gradients (and nothing from the generator loss)."""
    model = make_distiller(
        teacher_files,
        losses=dict(loss_adv=dict(type='_TestAdversarial', student='s_logits', teacher='t_logits')))
    loss = model.losses['loss_adv']
    ref = copy.deepcopy(loss.discriminator)
    seen = []
    critic_loss = loss.discriminator_loss
    loss.discriminator_loss = lambda s, t, **e: seen.append((s, t)) or critic_loss(s, t, **e)
    ow = adversarial_wrappers(model, critic_lr=1.0, accumulative_counts=2)
    model.train_step(batch(seed=0), ow)
    assert torch.equal(loss.discriminator.weight, ref.weight)  # accumulating, no update yet
    model.train_step(batch(seed=1), ow)
    grads = []
    for s, t in seen:
        ref.zero_grad()
        (ref(s).mean() - ref(t).mean()).backward()
        grads.append(ref.weight.grad.clone())
    expected = ref.weight.detach() - 1.0 * (grads[0] + grads[1]) / 2
    assert torch.allclose(loss.discriminator.weight, expected, atol=1e-6)


class _FakeDist:
    """Two ranks as seen from rank 1: broadcast writes rank 0's value (0.25 everywhere)."""

    def __init__(self, events: list) -> None:
        self.events = events

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_world_size(self):
        return 2

    def broadcast(self, tensor, src):
        assert src == 0
        self.events.append('broadcast')
        tensor.fill_(0.25)

    def all_reduce(self, tensor):
        tensor.mul_(2)  # both ranks hold the same averaged gradient in this fake


def test_critics_are_broadcast_before_their_first_use(teacher_files, monkeypatch):
    """The critic is equal across ranks before the first generator loss uses it, once."""
    events = []
    monkeypatch.setattr(distiller_module, 'dist', _FakeDist(events))
    model = make_distiller(
        teacher_files,
        losses=dict(loss_adv=dict(type='_TestAdversarial', student='s_logits', teacher='t_logits')))
    critic = model.losses['loss_adv'].discriminator
    critic.register_forward_pre_hook(lambda m, a: events.append(
        ('critic', bool((m.weight == 0.25).all()))))
    ow = adversarial_wrappers(model)
    model.train_step(batch(), ow)
    assert events[:3] == ['broadcast', 'broadcast', ('critic', True)]  # weight, bias, then use
    model.train_step(batch(seed=1), ow)
    assert events.count('broadcast') == 2


def test_non_finite_critic_loss_is_caught_by_the_hook(teacher_files):
    model = make_distiller(
        teacher_files,
        losses=dict(
            loss_hkd=dict(
                type='HolisticKD',
                num_classes=11,
                num_convs=2,
                base_channels=8,
                loss_weight=0.1,
                student='s_logits',
                teacher='t_logits')))
    loss = model.losses['loss_hkd']
    critic_loss = loss.discriminator_loss
    loss.discriminator_loss = lambda *a, **k: critic_loss(*a, **k) * 0 + float('inf')
    log = model.train_step(batch(), adversarial_wrappers(model))
    assert torch.isfinite(log['loss']) and 'loss' in 'loss_hkd.critic'
    with pytest.raises(FloatingPointError, match=r'iteration 1: loss_hkd.critic=inf'):
        NonFiniteLossHook().after_train_iter(SimpleNamespace(iter=0), 0, outputs=log)
