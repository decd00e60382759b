"""The written contract of what plugs into the Distiller (rtkd.distill.losses.base) and the
one-run shape report (every loss checked on the first step that runs a loss, one error).

A tiny mmseg student (helpers.seg_model, 4 base channels, decode + auxiliary head) distils
into itself, so no teacher is built. Tap shapes for the 2-image test batch:
``decode_head.conv_seg`` / ``auxiliary_head.conv_seg`` 2x11x4x6, ``decode_head.convs`` 2x8x4x6,
``auxiliary_head.convs`` 2x4x4x6, ``backbone[0]`` 2x4x8x12.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS

import rtkd  # noqa: F401  (registers everything)
from rtkd.distill import losses as rtkd_losses
from rtkd.distill.losses.base import AdversarialDistillLoss, BaseDistillLoss
from helpers import batch, seg_model

TAPS = dict(
    t_logits='student:decode_head.conv_seg',
    t_feat='student:decode_head.convs',
    s_logits='student:auxiliary_head.conv_seg',
    s_feat='student:auxiliary_head.convs',
    s_small='student:auxiliary_head.convs',
    t_big='student:backbone[0]')
KD = dict(type='HintonKD', student='s_logits', teacher='t_logits')


def self_distiller(losses: dict, connectors=None) -> nn.Module:
    return MODELS.build(
        dict(
            type='Distiller',
            student=dict(model=seg_model(4, aux=True), scope='mmseg'),
            taps=dict(TAPS),
            losses=copy.deepcopy(losses),
            connectors=copy.deepcopy(connectors))).train()


def run_loss(model: nn.Module) -> dict:
    return model.loss(**model.data_preprocessor(batch(), True))


# --------------------------------------------------------------------------- the contract
def test_every_rtkd_loss_derives_from_the_contract():
    """Every registered rtkd distillation loss is a BaseDistillLoss, HolisticKD adversarial.
    (KAReconstructionLoss is the stage-1 auto-encoder objective, not a Distiller loss.)"""
    names = [
        n for n in rtkd_losses.__all__
        if n.endswith(('Loss', 'KD')) and n not in ('KAReconstructionLoss', 'BaseDistillLoss',
                                                    'AdversarialDistillLoss')
    ]
    assert len(names) >= 15
    for name in names:
        cls = getattr(rtkd_losses, name)
        assert MODELS.get(name) is cls, name
        assert issubclass(cls, BaseDistillLoss), f'{name} does not derive from BaseDistillLoss'
    adversarial = [n for n in names if issubclass(getattr(rtkd_losses, n), AdversarialDistillLoss)]
    assert adversarial == ['HolisticKD']


def test_loss_weight_is_checked_by_the_base():
    assert rtkd_losses.HintonKD(loss_weight=0.5).loss_weight == 0.5
    for bad in (-1.0, float('inf'), 'x', True):
        with pytest.raises(ValueError, match=r'HintonKD: loss_weight must be a finite number >= 0'):
            rtkd_losses.HintonKD(loss_weight=bad)
    with pytest.raises(ValueError, match=r'ChannelWiseKD: loss_weight must be'):
        rtkd_losses.ChannelWiseKD(loss_weight=-3)


@MODELS.register_module(name='_ContractPlainLoss', force=True)
class _ContractPlainLoss(nn.Module):
    """A third-party loss: same forward, no base class, and attributes that look like the
    adversarial/setup contract (which must not make it one)."""

    calls = []

    def __init__(self) -> None:
        super().__init__()
        self.discriminator = nn.Conv2d(11, 1, 1)

    def setup(self, distiller) -> None:
        type(self).calls.append('setup')

    def discriminator_loss(self, student, teacher, **extra):
        raise AssertionError('not an AdversarialDistillLoss: never trained as a critic')

    def forward(self, student, teacher, **extra):
        return ((student - teacher)**2).mean()


@MODELS.register_module(name='_ContractBaseLoss', force=True)
class _ContractBaseLoss(BaseDistillLoss):
    """A BaseDistillLoss: its setup is called once, with the distiller."""

    calls = []

    def setup(self, distiller) -> None:
        type(self).calls.append(distiller)

    def forward(self, student, teacher, **extra):
        return ((student - teacher)**2).mean() * self.loss_weight


@MODELS.register_module(name='_ContractRandomLoss', force=True)
class _ContractRandomLoss(BaseDistillLoss):
    """MSE that draws from the global RNG (as sampling losses do)."""

    def forward(self, student, teacher, **extra):
        return ((student - teacher)**2).mean() * self.loss_weight + torch.rand(()) * 0


def test_what_a_loss_is_comes_from_its_class_not_its_attributes():
    _ContractPlainLoss.calls.clear()
    _ContractBaseLoss.calls.clear()
    model = self_distiller(
        dict(
            loss_plain=dict(type='_ContractPlainLoss', student='s_logits', teacher='t_logits'),
            loss_base=dict(
                type='_ContractBaseLoss', loss_weight=2.0, student='s_logits', teacher='t_logits')))
    assert model.adversarial_losses == []
    assert model._ddp_params_and_buffers_to_ignore == []
    assert _ContractPlainLoss.calls == []  # not a BaseDistillLoss: no setup call
    assert _ContractBaseLoss.calls == [model]
    out = run_loss(model)  # the third-party loss works through its forward alone
    assert float(out['loss_plain']) > 0
    assert float(out['loss_base']) == pytest.approx(2 * float(out['loss_plain']), rel=1e-6)


def test_holistic_kd_is_adversarial_by_class():
    model = self_distiller(
        dict(
            loss_hkd=dict(
                type='HolisticKD',
                num_classes=11,
                num_convs=1,
                student='s_logits',
                teacher='t_logits')))
    assert model.adversarial_losses == ['loss_hkd']
    ignored = model._ddp_params_and_buffers_to_ignore
    assert ignored and all(n.startswith('losses.loss_hkd.discriminator.') for n in ignored)
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    assert set(ignored) == {n for n in names if '.discriminator.' in n}


# --------------------------------------------------------------------------- shape report
TWO_MISMATCHES = dict(
    loss_kd=KD,
    loss_a=dict(type='FitNetsLoss', student='s_feat', teacher='t_feat'),  # channels
    loss_c=dict(
        type='FitNetsLoss',
        student='s_small',
        teacher='t_big',  # spatial, and
        schedule=dict(warmup_iters=5)))  # off at step 0


def test_every_shape_problem_in_one_error_with_one_consistent_fix():
    model = self_distiller(TWO_MISMATCHES)
    with pytest.raises(ValueError) as e:
        run_loss(model)
    msg = str(e.value)
    assert msg.startswith('2 distillation losses cannot compare their taps')
    assert "loss 'loss_a': student tap 's_feat' has shape (2, 4, 4, 6) but teacher tap " \
           "'t_feat' has shape (2, 8, 4, 6)" in msg
    assert "loss 'loss_c': student tap 's_small' has shape (2, 4, 4, 6) but teacher tap " \
           "'t_big' has shape (2, 4, 8, 12)" in msg  # checked although switched off
    fix = ("add connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=4, "
           "out_channels=8), s_small=dict(type='ResizeConnector', like='t_big'))")
    assert msg.count('add connectors') == 1 and fix in msg
    assert 'said:' not in msg and 'size=' not in msg  # no second, different hint from a loss
    # the one suggested fix is the whole fix: the same recipe with it trains
    fixed = self_distiller(
        TWO_MISMATCHES,
        connectors=dict(
            s_feat=dict(type='ConvBNConnector', in_channels=4, out_channels=8),
            s_small=dict(type='ResizeConnector', like='t_big')))
    out = run_loss(fixed)
    assert float(out['loss_a']) > 0 and float(out['loss_c']) == 0


def test_one_student_tap_needing_two_connectors_is_named_not_given_two_hints():
    model = self_distiller(
        dict(
            loss_kd=KD,
            loss_a=dict(type='FitNetsLoss', student='s_feat', teacher='t_feat'),
            loss_b=dict(type='FitNetsLoss', student='s_feat', teacher='t_big')))
    with pytest.raises(ValueError) as e:
        run_loss(model)
    msg = str(e.value)
    assert "loss 'loss_a'" in msg and "loss 'loss_b'" in msg
    assert "student tap 's_feat' is compared with teacher taps of different shapes" in msg
    assert "s_feat_2='student:auxiliary_head.convs'" in msg
    assert 'add connectors' not in msg


def test_checking_a_switched_off_loss_leaves_no_trace():
    """The first step checks loss_a (off by its warm-up) through its ConvBN connector: the
    connector's BN statistics and the global RNG are as if it had not run."""
    model = self_distiller(
        dict(
            loss_kd=KD,
            loss_a=dict(
                type='_ContractRandomLoss',
                student='s_feat',
                teacher='t_feat',
                schedule=dict(warmup_iters=5))),
        connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=4, out_channels=8)))
    ref = self_distiller(dict(loss_kd=KD))  # the same student without the switched-off loss
    ref.load_state_dict(model.state_dict(), strict=False)
    before = {n: b.clone() for n, b in model.connectors['s_feat'].named_buffers()}
    data = model.data_preprocessor(batch(), True)
    torch.manual_seed(0)
    ref.loss(**data)
    expected_rng = torch.rand(3)
    torch.manual_seed(0)
    out = model.loss(**data)
    assert torch.equal(torch.rand(3), expected_rng)  # the check drew nothing from the RNG
    assert float(out['loss_a']) == 0
    for n, b in model.connectors['s_feat'].named_buffers():
        assert torch.equal(b, before[n]), n
    assert model._graph_checked
