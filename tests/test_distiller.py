"""Tests of the task-agnostic Distiller (taps, connectors, schedules, freezing, teacher handling).

Tiny mmseg models (ResNetV1c-18 with 4-8 base channels + FCN heads) built from dicts, 32x48
inputs. Runner-level tests (train/test/resume/export/DDP) are in test_distiller_runner.py.
"""
from __future__ import annotations

import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn

import rtkd  # noqa: F401  (registers everything)
from mmengine.optim import OptimWrapper
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from rtkd.distill import Distiller, LossSchedule, TapSpec, build_schedule

BN = dict(type='BN', requires_grad=True)
CE = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
DP = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
          bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(32, 48))


def seg_model(base: int, aux: bool = False) -> dict:
    """A tiny mmseg EncoderDecoder (ResNetV1c-18, output stride 8, 11 classes)."""
    top = base * 8
    model = dict(
        type='EncoderDecoder', data_preprocessor=DP,
        backbone=dict(type='ResNetV1c', depth=18, base_channels=base, stem_channels=base,
                      out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                      norm_cfg=BN, contract_dilation=True),
        decode_head=dict(type='FCNHead', in_channels=top, in_index=3, channels=2 * base,
                         num_convs=1, concat_input=False, num_classes=11, norm_cfg=BN,
                         dropout_ratio=0.1, loss_decode=CE),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    if aux:
        model['auxiliary_head'] = dict(type='FCNHead', in_channels=base * 4, in_index=2,
                                       channels=base, num_convs=1, concat_input=False,
                                       num_classes=11, norm_cfg=BN,
                                       loss_decode=dict(CE, loss_weight=0.4))
    return model


@MODELS.register_module(name='_TestMSE', force=True)
class _TestMSE(nn.Module):
    """Plain MSE (for tests that need no particular loss)."""

    extra_inputs = ()

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student, teacher, **extra):
        if student.shape != teacher.shape:
            raise ValueError(f'shapes differ: {tuple(student.shape)} vs {tuple(teacher.shape)}')
        return ((student - teacher.detach()) ** 2).mean() * self.loss_weight


@MODELS.register_module(name='_TestNaNLoss', force=True)
class _TestNaNLoss(_TestMSE):
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
        losses=dict(loss_cwd=dict(type='ChannelWiseKD', tau=4.0, loss_weight=3.0,
                                  student='s_logits', teacher='t_logits')))
    cfg.update(overrides)
    return MODELS.build(cfg)


def batch(n: int = 2, h: int = 32, w: int = 48, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 255, (3, h, w), generator=g, dtype=torch.uint8))
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 11, (1, h, w), generator=g))
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


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
    for bad in ('decode_head.conv_seg', 'pupil:backbone', 'student:backbone#sideways',
                'student:backbone[x]'):
        with pytest.raises(ValueError, match='is not valid'):
            TapSpec.parse('x', bad)


def test_build_errors(teacher_files, tmp_path):
    with pytest.raises(KeyError, match=r"no module 'decode_head.conv_sge'.*decode_head.conv_seg"):
        make_distiller(teacher_files, taps=dict(s_logits='student:decode_head.conv_sge',
                                                t_logits='teacher:decode_head.conv_seg'))
    with pytest.raises(KeyError, match=r"teacher has no module 'backbone.layer5'.*backbone.layer"):
        make_distiller(teacher_files, taps=dict(s_logits='student:decode_head.conv_seg',
                                                t_logits='teacher:backbone.layer5'))
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='teacher checkpoint not found: .*nope.pth'):
        make_distiller(teacher_files, teacher=dict(config=teacher_files[0], checkpoint=missing))
    wrong = str(tmp_path / 'wrong.pth')
    torch.save(dict(state_dict={'foo.weight': torch.zeros(1)}), wrong)
    with pytest.raises(ValueError, match="holds none of the teacher model's weights"):
        make_distiller(teacher_files, teacher=dict(config=teacher_files[0], checkpoint=wrong))
    with pytest.raises(ValueError, match='teacher needs weights'):
        make_distiller(teacher_files, teacher=dict(config=teacher_files[0]))
    with pytest.raises(FileNotFoundError, match='teacher config not found'):
        make_distiller(teacher_files, teacher=dict(config='nowhere/t.py', checkpoint=None))
    with pytest.raises(KeyError, match=r"maps teacher='t_feat', which is not a tap"):
        make_distiller(teacher_files, losses=dict(loss_x=dict(
            type='_TestMSE', student='s_logits', teacher='t_feat')))
    with pytest.raises(ValueError, match="must contain 'loss'"):
        make_distiller(teacher_files, losses=dict(cwd=dict(
            type='_TestMSE', student='s_logits', teacher='t_logits')))
    with pytest.raises(KeyError, match='is not a tap'):
        make_distiller(teacher_files, connectors=dict(s_x=dict(type='ResizeConnector', like='t')))


def test_channel_mismatch_names_the_connector(teacher_files):
    taps = dict(s_feat='student:backbone[3]', t_feat='teacher:backbone[3]')
    losses = dict(loss_fit=dict(type='FitNetsLoss', student='s_feat', teacher='t_feat'))
    model = make_distiller(teacher_files, taps=taps, losses=losses)
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(ValueError, match=r"add connectors=dict\(s_feat=dict\(type='ConvBNConnector'"
                                         r', in_channels=32, out_channels=64\)\)'):
        model.loss(**data)
    model = make_distiller(teacher_files, taps=taps, losses=losses, connectors=dict(
        s_feat=dict(type='ConvBNConnector', in_channels=32, out_channels=64)))
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
    # the teacher stopped early: its hooks raised before EncoderDecoder returned
    assert not any(p.grad is not None for p in teacher.parameters())
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


def test_teacher_runs_only_as_far_as_needed(teacher_files):
    model = make_distiller(
        teacher_files, taps=dict(s_feat='student:backbone[3]', t_feat='teacher:backbone[3]'),
        connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=32, out_channels=64)),
        losses=dict(loss_nfd=dict(type='NFDLoss', student='s_feat', teacher='t_feat')))
    head_calls = []
    model.teacher.decode_head.register_forward_hook(lambda *a: head_calls.append(1))
    model.loss(**model.data_preprocessor(batch(), True))
    assert head_calls == []


def test_input_tap_and_resize_connector(teacher_files):
    model = make_distiller(
        teacher_files,
        taps=dict(s_in='student:decode_head.conv_seg#in', t_feat='teacher:backbone[3]'),
        connectors=dict(s_in=[dict(type='ConvBNConnector', in_channels=8, out_channels=64),
                              dict(type='ResizeConnector', size=(2, 3))]),
        losses=dict(loss_at=dict(type='_TestMSE', student='s_in', teacher='t_feat')))
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(ValueError, match=r"ResizeConnector', like='t_feat'"):
        model.loss(**data)


def test_schedules():
    s = LossSchedule(warmup_iters=10, decay_begin=20, decay_end=30, end_factor=0.5, stop_iter=40)
    assert [s(i) for i in (0, 5, 10, 20, 25, 30, 39, 40)] == [0, 0.5, 1, 1, 0.75, 0.5, 0.5, 0]
    assert LossSchedule(stop_epoch=2)(100, epoch=1) == 1 and LossSchedule(stop_epoch=2)(0, 2) == 0
    with pytest.raises(TypeError, match='valid keys'):
        build_schedule(dict(warmup=3))
    with pytest.raises(ValueError, match='decay_begin and decay_end'):
        LossSchedule(decay_begin=3)


def test_schedule_in_distiller_and_state(teacher_files):
    model = make_distiller(teacher_files, losses=dict(loss_cwd=dict(
        type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_logits', teacher='t_logits',
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
    return dict(loss_cwd=dict(type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_logits',
                              teacher='t_logits', schedule=dict(warmup_iters=2, stop_iter=3)))


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


def test_nan_detection(teacher_files):
    model = make_distiller(teacher_files, losses=dict(loss_bad=dict(
        type='_TestNaNLoss', student='s_logits', teacher='t_logits')))
    ow = sgd(model)
    model.train_step(batch(), ow)
    with pytest.raises(FloatingPointError, match=r"'loss_bad' is nan at iteration 1"):
        model.train_step(batch(), ow)


def test_teacher_input_renormalisation(teacher_files, tmp_path):
    # a teacher with another mean/std sees the same raw image as the student
    cfg_path, ckpt = teacher_files
    other = seg_model(8)
    other['data_preprocessor'] = dict(DP, mean=[0., 0., 0.], std=[255., 255., 255.],
                                      bgr_to_rgb=False)
    path = tmp_path / 'teacher2.py'
    path.write_text(f"default_scope = 'mmseg'\nmodel = {other!r}\n")
    model = make_distiller(teacher_files, teacher=dict(config=str(path), checkpoint=ckpt))
    seen = []
    model.teacher.backbone.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    data = model.data_preprocessor(batch(), True)
    model.loss(**data)
    # the student converts BGR->RGB, this teacher wants the loaded (BGR) order: it must see the
    # raw image, channel order included
    raw = torch.stack([b.float() for b in batch()['inputs']]) / 255.  # BGR as loaded, 0..1
    assert torch.allclose(seen[0], raw, atol=1e-4)


def test_adversarial_loss_extras_and_optimizer_check(teacher_files):
    # extra_inputs: HolisticKD reads 'inputs' without any config entry
    model = make_distiller(teacher_files, losses=dict(loss_hkd=dict(
        type='HolisticKD', num_classes=11, num_convs=2, base_channels=8, loss_weight=0.1,
        student='s_logits', teacher='t_logits')))
    assert model.adversarial_losses == ['loss_hkd']
    assert model.loss_maps['loss_hkd']['extras'] == {'inputs': 'inputs'}
    assert all('.discriminator.' in f'.{n}' for n in model._ddp_params_and_buffers_to_ignore)
    with pytest.raises(ValueError, match='train a discriminator'):
        model.train_step(batch(), sgd(model))


def test_student_initialised_from_its_checkpoint(teacher_files, tmp_path):
    with DefaultScope.overwrite_default_scope('mmseg'):
        student = MODELS.build(seg_model(4, aux=True))
    path = str(tmp_path / 'student.pth')
    torch.save(dict(state_dict=student.state_dict()), path)
    model = make_distiller(teacher_files, student=dict(model=seg_model(4, aux=True),
                                                       scope='mmseg', checkpoint=path))
    model.init_weights()  # what the Runner does; must not overwrite the student's weights
    for k, v in student.state_dict().items():
        assert torch.equal(model.student.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match='student checkpoint not found'):
        make_distiller(teacher_files, student=dict(model=seg_model(4), scope='mmseg',
                                                   checkpoint=str(tmp_path / 'x.pth')))


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

    from rtkd.distill.distiller import _bgr_to_rgb
    assert _bgr_to_rgb(ClsDataPreProcessor(to_rgb=True)) is True
    assert _bgr_to_rgb(ClsDataPreProcessor(to_rgb=False)) is False
    assert _bgr_to_rgb(SegDataPreProcessor(bgr_to_rgb=True)) is True
    assert _bgr_to_rgb(SegDataPreProcessor(bgr_to_rgb=False)) is False
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    assert _bgr_to_rgb(DetDataPreprocessor(bgr_to_rgb=True)) is True
