"""Tests of the distillation loss zoo (rtkd/distill/losses).

Every loss: zero at its optimum, no gradient into the teacher, a value checked against an
independent explicit-loop / numpy computation, its defining invariance, and shape errors that
name the connector to add.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS

from rtkd.distill.losses import (AttentionTransferLoss, ChannelWiseKD, FitNetsLoss, HintonKD,
                                 HolisticKD, NFDLoss, OFDLoss, PairWiseKD, PixelWiseKD,
                                 margin_from_bn)
from helpers import assert_no_teacher_grad, np_softmax, rand, seg_model

ALL_NAMES = [
    'PixelWiseKD', 'PairWiseKD', 'HolisticKD', 'ChannelWiseKD', 'OFDLoss', 'NFDLoss', 'FitNetsLoss',
    'AttentionTransferLoss', 'HintonKD'
]


# ---------------------------------------------------------------- registry / interface
def test_all_losses_registered_in_root_registry():
    for name in ALL_NAMES:
        assert MODELS.get(name) is not None, name
    cwd = MODELS.build(dict(type='ChannelWiseKD', tau=4.0, loss_weight=3.0))
    assert isinstance(cwd, ChannelWiseKD) and cwd.loss_weight == 3.0
    assert HolisticKD.extra_inputs == ('inputs', 'data_samples')
    assert PixelWiseKD.extra_inputs == ()


def test_loss_weight_is_applied():
    s, t = rand(2, 4, 5, 6, seed=1), rand(2, 4, 5, 6, seed=2)
    for cls, kw in [(HintonKD, {}), (PixelWiseKD, {}), (PairWiseKD, {}), (ChannelWiseKD, {}),
                    (NFDLoss, {}), (FitNetsLoss, {}), (AttentionTransferLoss, {}),
                    (OFDLoss, dict(margin=-0.5))]:
        a = cls(**kw)(s, t)
        b = cls(loss_weight=2.5, **kw)(s, t)
        assert torch.allclose(b, 2.5 * a), cls.__name__


def test_bad_arguments_fail_early():
    with pytest.raises(ValueError, match='tau'):
        ChannelWiseKD(tau=0)
    with pytest.raises(ValueError, match='normalization'):
        ChannelWiseKD(normalization='foo')
    with pytest.raises(ValueError, match='tau=1.0'):
        ChannelWiseKD(tau=4.0, divergence='mse')
    with pytest.raises(ValueError, match='scale'):
        PairWiseKD(scale=1.5)
    with pytest.raises(ValueError, match='num_classes'):
        HolisticKD(num_classes=0)
    with pytest.raises(ValueError, match='divergence'):
        PixelWiseKD(divergence='js')
    with pytest.raises(ValueError, match='<= 0'):
        OFDLoss(margin=[0.5, -1.0])


# ---------------------------------------------------------------- Hinton KD
def test_hinton_kd_value_zero_invariance_grad():
    s, t = rand(3, 5, seed=1), rand(3, 5, seed=2)
    tau = 2.0
    loss = HintonKD(tau=tau)(s, t)
    ps, pt = np_softmax(s.numpy() / tau, 1), np_softmax(t.numpy() / tau, 1)
    expected = 0.0
    for n in range(3):
        for c in range(5):
            expected += pt[n, c] * (math.log(pt[n, c]) - math.log(ps[n, c]))
    expected = expected / 3 * tau**2
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert HintonKD(tau=tau)(t, t).item() == pytest.approx(0.0, abs=1e-12)
    shift = rand(3, 1, seed=3) * 10
    assert torch.allclose(HintonKD(tau=tau)(s + shift, t), loss, atol=1e-10)
    assert_no_teacher_grad(HintonKD(tau=tau), s, t)


def test_hinton_kd_dense_equals_flattened_pixels():
    s, t = rand(2, 4, 3, 5, seed=1), rand(2, 4, 3, 5, seed=2)
    dense = HintonKD(tau=3.0)(s, t)
    flat = HintonKD(tau=3.0)(s.permute(0, 2, 3, 1).reshape(-1, 4), t.permute(0, 2, 3,
                                                                             1).reshape(-1, 4))
    assert torch.allclose(dense, flat)
    with pytest.raises(ValueError, match='ConvBNConnector'):
        HintonKD()(rand(2, 4), rand(2, 6))


# ---------------------------------------------------------------- pixel-wise KD
def test_pixel_wise_kd_value_and_official_normalisation():
    n, c, h, w = 2, 3, 2, 3
    s, t = rand(n, c, h, w, seed=1), rand(n, c, h, w, seed=2)
    tau = 2.0
    sn, tn = s.numpy(), t.numpy()
    kl = ce_t1 = 0.0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                ps, pt = np_softmax(sn[i, :, y, x] / tau, 0), np_softmax(tn[i, :, y, x] / tau, 0)
                kl += float((pt * (np.log(pt) - np.log(ps))).sum())
                ps1, pt1 = np_softmax(sn[i, :, y, x], 0), np_softmax(tn[i, :, y, x], 0)
                ce_t1 += float(-(pt1 * np.log(ps1)).sum())
    loss = PixelWiseKD(tau=tau)(s, t)
    assert loss.item() == pytest.approx(kl / (n * h * w) * tau**2, rel=1e-9)
    official = PixelWiseKD(divergence='ce', reduction='sum_batch')(s, t)
    assert official.item() == pytest.approx(ce_t1 / (h * w), rel=1e-9)
    # cross-entropy minus KL is the teacher entropy (independent of the student)
    ce_mean = PixelWiseKD(divergence='ce')(s, t) - PixelWiseKD()(s, t)
    ce_mean2 = PixelWiseKD(divergence='ce')(s * 3, t) - PixelWiseKD()(s * 3, t)
    assert torch.allclose(ce_mean, ce_mean2)


def test_pixel_wise_kd_zero_invariance_grad_shapes():
    s, t = rand(2, 4, 3, 5, seed=1), rand(2, 4, 3, 5, seed=2)
    loss_fn = PixelWiseKD(tau=1.5)
    assert loss_fn(t, t).item() == pytest.approx(0.0, abs=1e-12)
    per_pixel = rand(2, 1, 3, 5, seed=3) * 5
    assert torch.allclose(loss_fn(s + per_pixel, t), loss_fn(s, t), atol=1e-10)
    assert_no_teacher_grad(loss_fn, s, t)
    with pytest.raises(ValueError, match='ResizeConnector'):
        loss_fn(rand(2, 4, 6, 10), t)
    with pytest.raises(ValueError, match='ConvBNConnector'):
        loss_fn(rand(2, 5, 3, 5), t)


# ---------------------------------------------------------------- pair-wise KD
def _np_pairwise(s, t, scale):

    def pool(f):
        n, c, h, w = f.shape
        kh, kw = max(1, int(h * scale)), max(1, int(w * scale))
        oh, ow = math.ceil(h / kh), math.ceil(w / kw)
        out = np.zeros((n, c, oh, ow))
        for i in range(oh):
            for j in range(ow):
                out[:, :, i, j] = f[:, :, i * kh:(i + 1) * kh, j * kw:(j + 1) * kw].max(axis=(2, 3))
        return out

    def sim(f):
        n, c, h, w = f.shape
        nodes = f.reshape(n, c, h * w)
        nodes = nodes / (np.sqrt((nodes**2).sum(1, keepdims=True)) + 1e-8)
        a = np.zeros((n, h * w, h * w))
        for b in range(n):
            for i in range(h * w):
                for j in range(h * w):
                    a[b, i, j] = float((nodes[b, :, i] * nodes[b, :, j]).sum())
        return a, h * w

    ps, pt = pool(s), pool(t)
    a_s, m = sim(ps)
    a_t, _ = sim(pt)
    return float(((a_s - a_t)**2).sum() / m**2 / s.shape[0])


def test_pair_wise_kd_value_zero_grad():
    s, t = rand(2, 3, 5, 7, seed=1), rand(2, 4, 5, 7, seed=2)  # channels may differ
    loss = PairWiseKD(scale=0.5)(s, t)
    assert loss.item() == pytest.approx(_np_pairwise(s.numpy(), t.numpy(), 0.5), rel=1e-6)
    assert PairWiseKD()(t, t).item() == pytest.approx(0.0, abs=1e-10)
    assert_no_teacher_grad(PairWiseKD(), s, t)
    with pytest.raises(ValueError, match='ResizeConnector'):
        PairWiseKD()(rand(2, 3, 4, 7), t)


def _official_pairwise(s, t, scale):
    """The official ``sim_dis_compute`` on max-pooled maps: node norms detached."""

    def pool(f):
        k = (max(1, int(f.shape[2] * scale)), max(1, int(f.shape[3] * scale)))
        return torch.nn.functional.max_pool2d(f, k, k, ceil_mode=True)

    def sim(f):
        f = (f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-8).detach()).flatten(2)
        return torch.bmm(f.transpose(1, 2), f)

    ps, pt = pool(s), pool(t)
    m = ps.shape[2] * ps.shape[3]
    return ((sim(pt) - sim(ps))**2).sum() / m**2 / s.shape[0]


def test_pair_wise_kd_detach_norm_changes_the_gradient_not_the_value():
    """detach_norm never changes the forward value; it changes the gradient: with the norm
    detached it is the official one, without it the loss's invariance to the student's scale
    makes the gradient orthogonal to the student (d/dl L(l s) = <grad, s> = 0)."""
    s, t = rand(2, 3, 5, 7, seed=1), rand(2, 4, 5, 7, seed=2)

    def grad(loss_fn):
        x = s.clone().requires_grad_(True)
        loss_fn(x, t).backward()
        return x.grad

    exact = grad(PairWiseKD(scale=0.5))
    detached = grad(PairWiseKD(scale=0.5, detach_norm=True))
    official = grad(lambda x, y: _official_pairwise(x, y, 0.5))
    assert torch.allclose(detached, official, atol=1e-12)
    assert (exact * s).sum().abs().item() < 1e-6 * exact.abs().sum().item()  # eps 1e-8
    assert (detached * s).sum().abs().item() > 1e-3 * detached.abs().sum().item()
    assert PairWiseKD(
        scale=0.5, detach_norm=True)(s, t).item() == pytest.approx(
            PairWiseKD(scale=0.5)(s, t).item(), rel=1e-12)


def test_pair_wise_kd_invariant_to_positive_node_scaling():
    s, t = rand(1, 3, 8, 8, seed=1), rand(1, 3, 8, 8, seed=2)
    # scale 0.5 -> 4x4 windows -> 2x2 nodes; a positive factor constant inside each window
    factors = torch.rand(
        1, 1, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 5 + 0.1
    scaled = s * factors.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    loss_fn = PairWiseKD(scale=0.5)
    assert torch.allclose(loss_fn(scaled, t), loss_fn(s, t), atol=1e-6)


# ---------------------------------------------------------------- channel-wise KD
def test_channel_wise_kd_values_match_explicit_loops():
    n, c, h, w = 2, 3, 2, 3
    s, t = rand(n, c, h, w, seed=1), rand(n, c, h, w, seed=2)
    sn, tn = s.numpy(), t.numpy()
    tau = 4.0
    # 'channel' + kl
    total = 0.0
    for i in range(n):
        for k in range(c):
            ps = np_softmax(sn[i, k].reshape(-1) / tau, 0)
            pt = np_softmax(tn[i, k].reshape(-1) / tau, 0)
            total += float((pt * (np.log(pt) - np.log(ps))).sum())
    val = ChannelWiseKD(tau=tau)(s, t).item()
    assert val == pytest.approx(total * tau**2 / (n * c), rel=1e-9)
    # 'spatial' + kl: softmax over channels, / (N*H*W)
    total = 0.0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                ps, pt = np_softmax(sn[i, :, y, x] / tau, 0), np_softmax(tn[i, :, y, x] / tau, 0)
                total += float((pt * (np.log(pt) - np.log(ps))).sum())
    val = ChannelWiseKD(tau=tau, normalization='spatial')(s, t).item()
    assert val == pytest.approx(total * tau**2 / (n * h * w), rel=1e-9)
    # 'channel_mean' + mse: spatial means, summed squared error / (N*C)
    total = sum((sn[i, k].mean() - tn[i, k].mean())**2 for i in range(n) for k in range(c))
    val = ChannelWiseKD(normalization='channel_mean', divergence='mse')(s, t).item()
    assert val == pytest.approx(total / (n * c), rel=1e-9)
    # 'channel' + mse
    total = sum(
        float(((np_softmax(sn[i, k].reshape(-1), 0) -
                np_softmax(tn[i, k].reshape(-1), 0))**2).sum()) for i in range(n) for k in range(c))
    val = ChannelWiseKD(divergence='mse')(s, t).item()
    assert val == pytest.approx(total / (n * c), rel=1e-9)


def test_channel_wise_kd_zero_invariance_grad_shapes():
    s, t = rand(2, 4, 3, 5, seed=1), rand(2, 4, 3, 5, seed=2)
    loss_fn = ChannelWiseKD(tau=4.0, loss_weight=3.0)
    assert loss_fn(t, t).item() == pytest.approx(0.0, abs=1e-12)
    per_channel = rand(2, 4, 1, 1, seed=3) * 10
    assert torch.allclose(loss_fn(s + per_channel, t), loss_fn(s, t), atol=1e-10)
    assert_no_teacher_grad(loss_fn, s, t)
    with pytest.raises(ValueError, match=r"ConvBNConnector', in_channels=2, out_channels=4"):
        loss_fn(rand(2, 2, 3, 5), t)


# ---------------------------------------------------------------- OFD
def test_ofd_margin_closed_form_and_monte_carlo():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -0.5, 0.2]))
        bn.bias.copy_(torch.tensor([0.0, 0.3, 2.0]))  # channel 2: P(x<0) ~ 3e-24 -> -3|gamma|
    m = margin_from_bn(bn)
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    for k, (g, b) in enumerate([(1.0, 0.0), (0.5, 0.3)]):
        expected = b - g * phi(b / g) / Phi(-b / g)
        assert m[k].item() == pytest.approx(expected, rel=1e-5)
    assert m[2].item() == pytest.approx(-0.6, rel=1e-6)
    # Monte Carlo: E[x | x < 0] for x ~ N(0, 1) is -sqrt(2/pi)
    x = torch.randn(200000, generator=torch.Generator().manual_seed(0))
    assert x[x < 0].mean().item() == pytest.approx(m[0].item(), abs=0.01)
    with pytest.raises(ValueError, match='BatchNorm'):
        margin_from_bn(nn.Conv2d(3, 3, 1))


def test_ofd_value_zero_grad():
    n, c, h, w = 2, 3, 2, 2
    s, t = rand(n, c, h, w, seed=1), rand(n, c, h, w, seed=2)
    margin = [-0.3, -0.8, -0.1]
    loss = OFDLoss(margin=margin)(s, t)
    total = 0.0
    sn, tn = s.numpy(), t.numpy()
    for i in range(n):
        for k in range(c):
            for y in range(h):
                for x in range(w):
                    tt = max(tn[i, k, y, x], margin[k])
                    ss = sn[i, k, y, x]
                    if not (ss <= tt <= 0):
                        total += (ss - tt)**2
    assert loss.item() == pytest.approx(total / n, rel=1e-6)
    assert OFDLoss(
        margin=margin, normalize='mean')(s, t).item() == pytest.approx(
            total / s.numel(), rel=1e-6)
    # zero at the margin-ReLU target, and zero wherever the student sits below a negative target
    target = torch.maximum(t, torch.tensor(margin, dtype=t.dtype).view(1, -1, 1, 1))
    assert OFDLoss(margin=margin)(target, t).item() == pytest.approx(0.0, abs=1e-12)
    below = torch.where(target <= 0, target - 1.0, target)
    assert OFDLoss(margin=margin)(below, t).item() == pytest.approx(0.0, abs=1e-12)
    assert_no_teacher_grad(OFDLoss(margin=margin), s, t)


def test_ofd_setup_reads_teacher_bn_and_margin_is_not_checkpointed():

    class TinyDistiller:
        """The two attributes OFDLoss.setup uses (teacher + resolve_module)."""

        def __init__(self):
            self.teacher = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
            nn.init.uniform_(self.teacher[1].weight, 0.5, 1.5)
            nn.init.uniform_(self.teacher[1].bias, -0.5, 0.5)

        def resolve_module(self, name):
            side, dotted = name.split(':')
            assert side == 'teacher'
            return self.teacher.get_submodule(dotted)

    d = TinyDistiller()
    loss_fn = OFDLoss(teacher_bn='1')
    with pytest.raises(ValueError, match='no margin'):
        loss_fn(rand(1, 4, 2, 2), rand(1, 4, 2, 2))
    loss_fn.setup(d)
    assert torch.allclose(loss_fn.margin, margin_from_bn(d.teacher[1]))
    assert (loss_fn.margin < 0).all()
    assert 'margin' not in loss_fn.state_dict()
    assert torch.isfinite(loss_fn(rand(1, 4, 2, 2), rand(1, 4, 2, 2)))
    with pytest.raises(ValueError, match='4 channels but the features have 3'):
        loss_fn(rand(1, 3, 2, 2), rand(1, 3, 2, 2))


# ---------------------------------------------------------------- NFD
def test_nfd_value_zero_invariance_grad():
    n, c, h, w = 2, 3, 3, 4
    s, t = rand(n, c, h, w, seed=1), rand(n, c, h, w, seed=2)
    eps = 1e-5

    def standardize(f):
        out = np.zeros_like(f)
        for i in range(n):
            for k in range(c):
                v = f[i, k]
                out[i, k] = (v - v.mean()) / np.sqrt(v.var() + eps)
        return out

    diff = standardize(s.numpy()) - standardize(t.numpy())
    assert NFDLoss()(s, t).item() == pytest.approx(float((diff**2).mean()), rel=1e-9)
    assert NFDLoss(reduction='pixel')(s, t).item() == pytest.approx(
        float((diff**2).sum() / (n * h * w)), rel=1e-9)
    loss_fn = NFDLoss(loss_weight=0.7)
    assert loss_fn(t, t).item() == pytest.approx(0.0, abs=1e-12)
    # affine a*F + b (a > 0, per sample and channel) of the student does not change the loss
    a = torch.rand(
        n, c, 1, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 3 + 0.5
    b = rand(n, c, 1, 1, seed=5) * 4
    assert torch.allclose(loss_fn(a * s + b, t), loss_fn(s, t), rtol=1e-4)
    chw = NFDLoss(norm_dims='chw')
    assert torch.allclose(chw(2.0 * s - 1.0, t), chw(s, t), rtol=1e-4)
    assert_no_teacher_grad(loss_fn, s, t)
    with pytest.raises(ValueError, match='ConvBNConnector'):
        loss_fn(rand(n, 5, h, w), t)


# ---------------------------------------------------------------- FitNets
def test_fitnets_value_zero_grad():
    s, t = rand(2, 3, 2, 2, seed=1), rand(2, 3, 2, 2, seed=2)
    d = (s.numpy() - t.numpy())**2
    assert FitNetsLoss()(s, t).item() == pytest.approx(float(d.mean()), rel=1e-9)
    paper = float(0.5 * d.sum() / 2)
    assert FitNetsLoss(reduction='paper')(s, t).item() == pytest.approx(paper, rel=1e-9)
    assert FitNetsLoss()(t, t).item() == 0.0
    assert_no_teacher_grad(FitNetsLoss(), s, t)
    with pytest.raises(ValueError, match='ConvBNConnector'):
        FitNetsLoss()(rand(2, 8, 2, 2), t)


# ---------------------------------------------------------------- attention transfer
def test_attention_transfer_value_zero_invariance_grad():
    n, h, w = 2, 3, 4
    s, t = rand(n, 3, h, w, seed=1), rand(n, 5, h, w, seed=2)  # channel counts may differ

    def att(f):
        q = (np.abs(f)**2).mean(axis=1).reshape(f.shape[0], -1)
        return q / np.linalg.norm(q, axis=1, keepdims=True)

    diff = att(s.numpy()) - att(t.numpy())
    paper = float(np.mean([np.sqrt((diff[i]**2).sum()) for i in range(n)]))
    assert AttentionTransferLoss()(s, t).item() == pytest.approx(paper, rel=1e-9)
    assert AttentionTransferLoss(reduction='official')(s, t).item() == pytest.approx(
        float((diff**2).mean()), rel=1e-9)
    loss_fn = AttentionTransferLoss()
    assert loss_fn(t, t).item() == pytest.approx(0.0, abs=1e-7)
    assert torch.allclose(loss_fn(7.5 * s, t), loss_fn(s, t))
    assert_no_teacher_grad(loss_fn, s, t)
    assert_no_teacher_grad(loss_fn, t, t)  # gradient at the optimum is finite (no NaN)
    with pytest.raises(ValueError, match='ResizeConnector'):
        loss_fn(rand(n, 3, 6, 8), t)


# ---------------------------------------------------------------- holistic (WGAN-GP)
def test_holistic_generator_and_discriminator_gradients():
    torch.manual_seed(0)
    k = 4
    loss_fn = HolisticKD(num_classes=k, base_channels=8, num_convs=2, loss_weight=0.1)
    s = torch.randn(2, k, 8, 12, requires_grad=True)
    t = torch.randn(2, k, 8, 12, requires_grad=True)
    img = torch.randn(2, 3, 32, 48)
    critic_params = list(loss_fn.discriminator.parameters())
    # generator step: the student gets gradients, the critic and the teacher do not
    g_loss = loss_fn(s, t, inputs=img)
    g_loss.backward()
    assert g_loss.dim() == 0
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    assert all(p.grad is None for p in critic_params)
    assert all(p.requires_grad for p in critic_params)
    # critic step: only the critic gets gradients; GP finite
    s.grad = None
    d_loss = loss_fn.discriminator_loss(s, t, inputs=img)
    d_loss.backward()
    assert torch.isfinite(d_loss)
    assert s.grad is None and t.grad is None
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic_params)
    gp = loss_fn.gradient_penalty(torch.softmax(t, 1), torch.softmax(s, 1), img)
    assert torch.isfinite(gp) and gp.item() >= 0
    # generator loss value is -loss_weight * mean D(Q_s | I): the critic sees softmax(Q_s) and
    # the image resized to the score map
    loss_fn.eval()  # freeze spectral-norm power iterations for an exact comparison
    with torch.no_grad():
        img_small = torch.nn.functional.interpolate(
            img, size=(8, 12), mode='bilinear', align_corners=False)
        d_in = torch.cat([torch.softmax(s, dim=1), img_small], dim=1)
        expected = -0.1 * loss_fn.discriminator(d_in).mean()
        assert loss_fn(s, t, inputs=img).item() == pytest.approx(expected.item(), rel=1e-6)
    assert any(key.startswith('discriminator.') for key in loss_fn.state_dict())


def test_holistic_wasserstein_term_zero_when_student_equals_teacher_and_critic_learns():
    torch.manual_seed(0)
    k = 3
    loss_fn = HolisticKD(num_classes=k, base_channels=8, num_convs=2, lambda_gp=0.0)
    t = torch.randn(2, k, 8, 8)
    img = torch.randn(2, 3, 8, 8)
    assert loss_fn.discriminator_loss(t, t, inputs=img).item() == pytest.approx(0.0, abs=1e-6)
    # a few critic steps separate teacher maps from (different) student maps
    s = torch.randn(2, k, 8, 8)
    loss_fn = HolisticKD(num_classes=k, base_channels=8, num_convs=2, spectral_norm=False)
    opt = torch.optim.Adam(loss_fn.discriminator.parameters(), lr=1e-2)

    def gap():
        with torch.no_grad():
            return (loss_fn.critic(t * 4, img).mean() - loss_fn.critic(s, img).mean()).item()

    before = gap()
    for _ in range(5):
        opt.zero_grad()
        loss_fn.discriminator_loss(s, t * 4, inputs=img).backward()
        opt.step()
    assert gap() > before  # the critic learned to score teacher maps above student maps


def test_holistic_sample_keyed_alpha_is_layout_independent():
    """alpha='sample': a sample's penalty factor depends on (critic step, its file name) only,
    not on the batch it sits in (so 2 x 4 under DDP draws what 1 x 8 draws); the default keeps
    the global RNG and adds no buffer (older checkpoints load strictly)."""
    from types import SimpleNamespace

    def samples(*names):
        return [SimpleNamespace(metainfo=dict(img_path=f'/data/train/{n}.png')) for n in names]

    real = torch.zeros(4, 3, 2, 2)
    one = HolisticKD(num_classes=3, alpha='sample')
    a = one._alphas(real, samples('a', 'b', 'c', 'd')).flatten().tolist()
    half0 = HolisticKD(num_classes=3, alpha='sample')
    half1 = HolisticKD(num_classes=3, alpha='sample')
    b = half0._alphas(real[:2], samples('c', 'a')).flatten().tolist()
    c = half1._alphas(real[:2], samples('d', 'b')).flatten().tolist()
    assert b == [a[2], a[0]] and c == [a[3], a[1]]
    assert len(set(a)) == 4 and all(0 <= v < 1 for v in a)
    assert one._alphas(real, samples('a', 'b', 'c', 'd')).flatten().tolist() != a  # next step
    assert int(one.gp_step) == 2 and 'gp_step' in one.state_dict()
    assert 'gp_step' not in HolisticKD(num_classes=3).state_dict()
    with pytest.raises(ValueError, match="img_path"):
        one._alphas(real, None)
    with pytest.raises(ValueError, match='alpha'):
        HolisticKD(num_classes=3, alpha='batch')


def test_holistic_input_checks_and_unconditional_mode():
    loss_fn = HolisticKD(num_classes=4, base_channels=8, num_convs=1)
    s, t = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match='inputs='):
        loss_fn(s, t)
    with pytest.raises(ValueError, match='N x 4 x H x W'):
        loss_fn(torch.randn(1, 5, 8, 8), t, inputs=torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match='lower num_convs'):
        HolisticKD(
            num_classes=4, num_convs=3)(
                torch.randn(1, 4, 4, 4), inputs=torch.randn(1, 3, 4, 4))
    uncond = HolisticKD(
        num_classes=4, conditional=False, input_mode='logits', base_channels=8, num_convs=1)
    assert torch.isfinite(uncond(s, t)) and torch.isfinite(uncond.discriminator_loss(s, t))


# ---------------------------------------------------------------- inside the real Distiller
def test_every_dense_loss_inside_the_distiller(tmp_path):
    """All dense losses at once through rtkd's Distiller on tiny mmseg models (2 x 3 x 32 x 48)."""
    from mmengine.registry import DefaultScope
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    import rtkd  # noqa: F401  (registers models, distiller, connectors)

    torch.manual_seed(0)
    cfg_path = str(tmp_path / 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmseg'\nmodel = {seg_model(8)!r}\n")
    with DefaultScope.overwrite_default_scope('mmseg'):
        teacher = MODELS.build(seg_model(8))
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)

    bn2 = 'backbone.layer4.1.bn2'  # pre-residual, pre-ReLU BN output (student 32 ch, teacher 64)
    logits = dict(student='s_logits', teacher='t_logits')
    model = MODELS.build(
        dict(
            type='Distiller',
            student=dict(model=seg_model(4), scope='mmseg'),
            teacher=dict(config=cfg_path, checkpoint=ckpt),
            taps=dict(
                s_logits='student:decode_head.conv_seg',
                t_logits='teacher:decode_head.conv_seg',
                s_feat='student:' + bn2,
                s_raw='student:backbone.layer4',
                t_feat='teacher:' + bn2,
                t_raw='teacher:backbone.layer4'),
            connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=32, out_channels=64)),
            losses=dict(
                loss_pi=dict(type='PixelWiseKD', loss_weight=10.0, **logits),
                loss_cwd=dict(type='ChannelWiseKD', tau=4.0, loss_weight=3.0, **logits),
                loss_kd=dict(type='HintonKD', tau=2.0, **logits),
                loss_hkd=dict(
                    type='HolisticKD',
                    num_classes=11,
                    num_convs=2,
                    base_channels=8,
                    loss_weight=0.1,
                    **logits),
                loss_pa=dict(type='PairWiseKD', student='s_raw', teacher='t_raw'),
                loss_at=dict(type='AttentionTransferLoss', student='s_raw', teacher='t_raw'),
                loss_nfd=dict(type='NFDLoss', loss_weight=0.7, student='s_feat', teacher='t_feat'),
                loss_fit=dict(type='FitNetsLoss', student='s_feat', teacher='t_feat'),
                loss_ofd=dict(
                    type='OFDLoss',
                    teacher_bn=bn2,
                    loss_weight=1e-3,
                    student='s_feat',
                    teacher='t_feat'))))
    # OFD read its margin from the teacher's BN in setup()
    expected = margin_from_bn(model.resolve_module('teacher:' + bn2))
    assert torch.allclose(model.losses['loss_ofd'].margin, expected)
    assert expected.numel() == 64 and (expected < 0).all()

    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 11, (1, 32, 48), generator=g))
        sample.set_metainfo(dict(img_shape=(32, 48), ori_shape=(32, 48), pad_shape=(32, 48)))
        samples.append(sample)
    data = model.data_preprocessor(
        dict(
            inputs=[
                torch.randint(0, 255, (3, 32, 48), generator=g, dtype=torch.uint8) for _ in range(2)
            ],
            data_samples=samples), True)
    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    names = [
        'loss_pi', 'loss_cwd', 'loss_kd', 'loss_hkd', 'loss_pa', 'loss_at', 'loss_nfd', 'loss_fit',
        'loss_ofd'
    ]
    for name in names:
        assert losses[name].dim() == 0 and torch.isfinite(losses[name]), name
    sum(losses[n] for n in names).backward()
    conv_w = model.student.backbone.layer4[1].conv2.weight
    assert conv_w.grad is not None and torch.isfinite(conv_w.grad).all()
    assert all(p.grad is None for p in model.losses['loss_hkd'].discriminator.parameters())
