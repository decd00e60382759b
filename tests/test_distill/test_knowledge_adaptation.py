"""Knowledge adaptation (He et al., CVPR 2019): stage-1 auto-encoder model, stage-2 connectors
and losses, the two-stage Runner flow and its build-time checks.

Tiny mmseg teacher/student (tests/helpers/models.py ``seg_model``), tiny CamVid, 32x48 crops.
"""
from __future__ import annotations

import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import rtkd  # noqa: F401
from rtkd.distill.ka import KAAutoEncoder, KAEncoderConnector
from rtkd.distill.losses import KAAdaptationLoss, KAAffinityLoss, KAReconstructionLoss
from helpers import ROOT, batch, seg_model, write_config

T_TAP = 'teacher:decode_head.conv_seg#in'  # 16 channels for seg_model(8), 1/8 of the input
S_TAP = 'student:decode_head.conv_seg#in'  # 8 channels for seg_model(4)
AE = dict(channels=(8, 8, 4), strides=(2, 1, 1))


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    """The tiny teacher (config file, checkpoint) of test_distiller_runner."""
    root = tmp_path_factory.mktemp('ka_teacher')
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmseg'\nmodel = {seg_model(8)!r}\n")
    ckpt = osp.join(root, 'teacher.pth')
    torch.manual_seed(0)  # the same teacher whatever ran before (module-scoped fixture)
    torch.save(dict(state_dict=build(seg_model(8)).state_dict()), ckpt)
    return cfg_path, ckpt


def stage1_model(teacher, tap=T_TAP, **kw) -> dict:
    return dict(
        type='KATeacherAutoEncoder',
        teacher=dict(config=teacher[0], checkpoint=teacher[1]),
        tap=tap,
        autoencoder=dict(AE),
        **kw)


@pytest.fixture(scope='module')
def stage1_ckpt(teacher, tmp_path_factory):
    """A stage-1 checkpoint (random auto-encoder) of the tiny teacher's conv_seg input."""
    model = MODELS.build(stage1_model(teacher))
    path = osp.join(tmp_path_factory.mktemp('ka'), 'ae.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def stage2_model(teacher, ckpt, t_tap=T_TAP, **kw) -> dict:
    return dict(
        type='Distiller',
        student=dict(model=seg_model(4, aux=True), scope='mmseg'),
        teacher=dict(config=teacher[0], checkpoint=teacher[1]),
        taps=dict(s_ad=S_TAP, s_aff=S_TAP, t_feat=t_tap),
        connectors=dict(
            t_feat=dict(type='KAEncoderConnector', checkpoint=ckpt),
            s_ad=dict(type='KAAdapter', in_channels=8, out_channels=4, stride=2),
            s_aff=dict(
                type='KAAdapter', in_channels=8, out_channels=4, stride=2, norm=False, relu=False)),
        losses=dict(
            loss_adapt=dict(
                type='KAAdaptationLoss', loss_weight=50.0, student='s_ad', teacher='t_feat'),
            loss_aff=dict(
                type='KAAffinityLoss', loss_weight=1.0, student='s_aff', teacher='t_feat')),
        **kw)


def build(cfg: dict):
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg)


# --------------------------------------------------------------------------------------------
# auto-encoder and reconstruction loss
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('hw', [(4, 6), (5, 7)])
def test_autoencoder_restores_the_input_size_and_keeps_meta(hw):
    ae = KAAutoEncoder(6, channels=(6, 4, 3), strides=(2, 2, 1))
    x = torch.randn(2, 6, *hw)
    code, recon = ae(x)
    assert code.shape == (2, 3, math.ceil(math.ceil(hw[0] / 2) / 2),
                          math.ceil(math.ceil(hw[1] / 2) / 2))
    assert recon.shape == x.shape  # odd sizes too (ConvTranspose output_size)
    assert (code >= 0).all()  # BN + ReLU code
    ae.meta['tap'] = 'teacher:x#in'
    other = KAAutoEncoder(6, channels=(6, 4, 3), strides=(2, 2, 1))
    other.load_state_dict(ae.state_dict())
    assert other.meta['tap'] == 'teacher:x#in' and other.meta['arch']['channels'] == [6, 4, 3]
    with pytest.raises(ValueError, match='in_channels=5'):
        ae(torch.randn(1, 5, 4, 4))


def test_reconstruction_loss_by_hand():
    recon = torch.tensor([[[[1.0, 2.0]], [[0.0, -1.0]]]], dtype=torch.float64)  # 1x2x1x2
    target = torch.tensor([[[[0.0, 2.0]], [[1.0, 1.0]]]], dtype=torch.float64)
    code = torch.tensor([[[[3.0, -4.0]]]], dtype=torch.float64)
    out = KAReconstructionLoss(reg_weight=0.5, loss_weight=2.0)(recon, target, code)
    # squared errors 1, 0, 1, 4 over 4 elements; |code| sums to 7, over the 4 feature elements
    assert out['loss_rec'].item() == pytest.approx(2.0 * 6 / 4)
    assert out['loss_reg'].item() == pytest.approx(2.0 * 0.5 * 7 / 4)


def test_stage1_teacher_is_frozen_and_not_in_the_state_dict(teacher):
    model = MODELS.build(stage1_model(teacher))
    model.train()
    assert not model.teacher.training and model.autoencoder.training
    assert all(not p.requires_grad for p in model.teacher.parameters())
    keys = list(model.state_dict())
    assert keys and all(k.startswith('autoencoder.') for k in keys)
    meta = model.state_dict()['autoencoder._extra_state']
    assert meta['tap'] == T_TAP and meta['arch']['in_channels'] == 16  # read from conv_seg
    assert meta['teacher']['teacher_checkpoint_sha256']


def test_stage1_reconstruction_loss_decreases(teacher):
    torch.manual_seed(0)
    model = MODELS.build(stage1_model(teacher))
    model.train()
    x = torch.randn(2, 3, 32, 48)
    t_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(8):
        out = model(x, None, mode='loss')
        loss = out['loss_rec'] + out['loss_reg']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(out['loss_rec'].item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(torch.equal(v, t_before[k]) for k, v in model.teacher.state_dict().items())


# --------------------------------------------------------------------------------------------
# adaptation loss
# --------------------------------------------------------------------------------------------
def test_adaptation_loss_zero_when_equal_and_no_teacher_gradient():
    s = torch.rand(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    t = s.detach().clone().requires_grad_(True)
    for normalize in ('position', 'sample'):
        loss = KAAdaptationLoss(normalize=normalize)(s, t)
        assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss = KAAdaptationLoss()(s, t * 2 + 1)
    loss.backward()
    assert t.grad is None and s.grad is not None and torch.isfinite(s.grad).all()


def test_adaptation_loss_by_hand():
    # one image, 2 channels, 1x2 positions; position 0: s=(3,4) t=(1,0); position 1: s=(0,2) t=(0,5)
    s = torch.tensor([[[[3.0, 0.0]], [[4.0, 2.0]]]], dtype=torch.float64)
    t = torch.tensor([[[[1.0, 0.0]], [[0.0, 5.0]]]], dtype=torch.float64)
    # unit vectors: s0=(.6,.8) t0=(1,0) -> l1 distance .4+.8=1.2; s1=t1=(0,1) -> 0; mean 0.6
    loss = KAAdaptationLoss(p=1, q=2, eps=1e-12, loss_weight=50.0)(s, t)
    assert loss.item() == pytest.approx(50.0 * 0.6)
    # per sample (p=2, q=2): s/|s| = (3,0,4,2)/sqrt(29), t/|t| = (1,0,0,5)/sqrt(26)
    a = torch.tensor([3.0, 0.0, 4.0, 2.0], dtype=torch.float64) / 29**0.5
    b = torch.tensor([1.0, 0.0, 0.0, 5.0], dtype=torch.float64) / 26**0.5
    loss = KAAdaptationLoss(
        p=2, q=2, normalize='sample', eps=1e-12)(s[:, :, :, [0, 1]],
                                                 t)  # flatten order is (c, h, w): (3, 0, 4, 2)
    assert loss.item() == pytest.approx((a - b).norm().item())


def test_adaptation_loss_invariant_to_positive_per_position_scaling():
    torch.manual_seed(0)
    s, t = torch.rand(2, 4, 3, 3, dtype=torch.float64), torch.rand(2, 4, 3, 3, dtype=torch.float64)
    scale = torch.rand(2, 1, 3, 3, dtype=torch.float64) * 10 + 0.1
    loss = KAAdaptationLoss(eps=1e-15)  # exact up to eps
    assert loss(s * scale, t).item() == pytest.approx(loss(s, t).item(), rel=1e-9)
    assert loss(s, t * scale).item() == pytest.approx(loss(s, t).item(), rel=1e-9)


def test_adaptation_loss_refuses_shape_mismatch_with_a_hint():
    with pytest.raises(ValueError, match='ConvBNConnector'):
        KAAdaptationLoss()(torch.rand(1, 3, 2, 2), torch.rand(1, 4, 2, 2))
    with pytest.raises(ValueError, match='norm order'):
        KAAdaptationLoss(p=0.5)


# --------------------------------------------------------------------------------------------
# affinity loss
# --------------------------------------------------------------------------------------------
def test_affinity_loss_zero_when_equal_and_no_teacher_gradient():
    s = torch.rand(2, 3, 2, 3, requires_grad=True)
    t = s.detach().clone().requires_grad_(True)
    assert KAAffinityLoss()(s, t).item() == pytest.approx(0.0, abs=1e-6)
    loss = KAAffinityLoss()(s, torch.rand(2, 5, 2, 3, requires_grad=True))  # channels may differ
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    t2 = torch.rand(2, 5, 2, 3, requires_grad=True)
    KAAffinityLoss()(s, t2).backward()
    assert t2.grad is None


def test_affinity_loss_by_hand():
    # 2 channels, 1x3 positions: student f = (1,0), (0,1), (1,1); teacher g = (1,0), (1,0), (0,1)
    s = torch.tensor([[[[1.0, 0.0, 1.0]], [[0.0, 1.0, 1.0]]]], dtype=torch.float64)
    t = torch.tensor([[[[1.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]]]], dtype=torch.float64)
    r = 2**-0.5
    a_s = torch.tensor([[1, 0, r], [0, 1, r], [r, r, 1]], dtype=torch.float64)
    a_t = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float64)
    expected = (a_s - a_t).norm(dim=1).mean().item()  # mean over the 3 rows of row L2 norms
    assert KAAffinityLoss(loss_weight=3.0)(s, t).item() == pytest.approx(3.0 * expected, rel=1e-6)


def test_affinity_loss_invariant_to_positive_per_position_scaling():
    torch.manual_seed(0)
    s, t = torch.rand(2, 4, 3, 3, dtype=torch.float64), torch.rand(2, 6, 3, 3, dtype=torch.float64)
    scale = torch.rand(2, 1, 3, 3, dtype=torch.float64) * 10 + 0.1
    loss = KAAffinityLoss()
    assert loss(s * scale, t).item() == pytest.approx(loss(s, t).item(), rel=1e-5)
    assert loss(s, t * scale).item() == pytest.approx(loss(s, t).item(), rel=1e-5)


# --------------------------------------------------------------------------------------------
# stage 2: frozen encoder, build-time checks
# --------------------------------------------------------------------------------------------
def test_stage2_encoder_is_frozen_and_gets_no_gradient(teacher, stage1_ckpt):
    model = build(stage2_model(teacher, stage1_ckpt))
    enc = model.connectors['t_feat'][0]
    assert isinstance(enc, KAEncoderConnector)
    saved = torch.load(stage1_ckpt, map_location='cpu')['state_dict']
    for k, v in enc.encoder.state_dict().items():
        assert torch.equal(v, saved['autoencoder.encoder.' + k])
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    model.train()
    assert not enc.training and all(not m.training for m in enc.modules())
    assert all(not p.requires_grad for p in enc.parameters())
    data = model.data_preprocessor(batch(2), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_adapt', 'loss_aff'} <= set(losses)
    (losses['loss_adapt'] + losses['loss_aff']).backward()
    assert all(p.grad is None for p in enc.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    adapters = list(model.connectors['s_ad'].parameters()) + \
        list(model.connectors['s_aff'].parameters())
    assert all(p.grad is not None for p in adapters)
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())  # BN stats too


def test_stage2_refuses_a_checkpoint_of_another_tap(teacher, stage1_ckpt):
    with pytest.raises(
            ValueError,
            match=r"encodes 'teacher:decode_head.conv_seg#in' but teacher "
            r"tap 't_feat' is 'teacher:backbone\[3\]'"):
        build(stage2_model(teacher, stage1_ckpt, t_tap='teacher:backbone[3]'))


def test_stage2_refuses_a_checkpoint_with_other_channels(teacher, stage1_ckpt, tmp_path):
    # another teacher, same tap string, 8 instead of 16 channels
    cfg_path = str(tmp_path / 'small_teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmseg'\nmodel = {seg_model(4)!r}\n")
    small = build(seg_model(4))
    ckpt = str(tmp_path / 'small.pth')
    torch.save(dict(state_dict=small.state_dict()), ckpt)
    with pytest.raises(
            ValueError,
            match='encodes 16-channel features but teacher tap '
            r"'t_feat' .* has 8 channels"):
        build(stage2_model((cfg_path, ckpt), stage1_ckpt))


def test_stage2_refuses_a_non_stage1_checkpoint_and_a_missing_encoder(teacher, stage1_ckpt):
    with pytest.raises(ValueError, match='is not a knowledge-adaptation stage-1 checkpoint'):
        build(stage2_model(teacher, teacher[1]))  # the teacher's own weights
    cfg = stage2_model(teacher, stage1_ckpt)
    cfg['connectors'].pop('t_feat')
    cfg['connectors']['s_ad']['stride'] = 1
    cfg['connectors']['s_ad']['out_channels'] = 16
    cfg['losses'].pop('loss_aff')
    cfg['connectors'].pop('s_aff')
    cfg['taps'].pop('s_aff')
    with pytest.raises(
            ValueError, match="add connectors=dict\\(t_feat=dict\\(type="
            "'KAEncoderConnector'"):
        build(cfg)


# --------------------------------------------------------------------------------------------
# the two commands: stage 1 then stage 2, each a 2-iteration Runner run
# --------------------------------------------------------------------------------------------
NO_VAL = ('val_dataloader = None\nval_cfg = None\nval_evaluator = None\n'
          'test_dataloader = None\ntest_cfg = None\ntest_evaluator = None\n'
          "optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='SGD', "
          'lr=0.1, momentum=0.9, weight_decay=1e-4))\n')


def test_two_stage_runner(tiny_camvid, teacher, tmp_path):
    work1 = str(tmp_path / 'stage1')
    cfg1 = write_config(
        str(tmp_path / 'ka_ae.py'), tiny_camvid, work1, stage1_model(teacher), extra=NO_VAL)
    runner = Runner.from_cfg(Config.fromfile(cfg1))
    runner.train()
    assert {'train/loss_rec', 'train/loss_reg'} <= set(runner.message_hub.log_scalars)
    ckpt = osp.join(work1, 'iter_2.pth')
    sd = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    assert sd and all(k.startswith('autoencoder.') for k in sd)
    assert sd['autoencoder._extra_state']['tap'] == T_TAP

    work2 = str(tmp_path / 'stage2')
    cfg2 = write_config(
        str(tmp_path / 'ka.py'),
        tiny_camvid,
        work2,
        stage2_model(teacher, ckpt),
        extra="model_wrapper_cfg = dict(type='DistillerDataParallel')\n")
    runner = Runner.from_cfg(Config.fromfile(cfg2))
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert {'train/loss_adapt', 'train/loss_aff', 'train/decode.loss_ce'} <= set(scalars)
    enc = runner.model.connectors['t_feat'][0]
    for k, v in enc.encoder.state_dict().items():  # two SGD steps did not touch the encoder
        assert torch.equal(v, sd['autoencoder.encoder.' + k]), k


def test_camvid_recipes_name_each_other():
    """The stage-2 recipe names the checkpoint the stage-1 recipe writes, on the same tap."""
    root = osp.join(ROOT, 'configs/distill/seg/ka')
    s1_name = 'ka-stage1_head-feat_bisenetv2-ft3000_1xb8-300_camvid-240x320'
    s1 = Config.fromfile(osp.join(root, s1_name + '.py'))
    s2 = Config.fromfile(
        osp.join(root, 'ka_head-feat_bisenetv2-ft3000_fast-scnn_1xb8-6k_'
                 'camvid-240x320.py'))
    assert s1.model.type == 'KATeacherAutoEncoder' and s1.val_cfg is None
    assert s2.model.connectors.t_feat.checkpoint == \
        f'work_dirs/{s1_name}/iter_{s1.train_cfg.max_iters}.pth'
    assert s2.model.taps.t_feat == s1.model.tap
    assert s2.model.teacher == s1.model.teacher
    code = s1.model.autoencoder.channels[-1]
    assert s2.model.connectors.s_ad.out_channels == s2.model.connectors.s_aff.out_channels == code
