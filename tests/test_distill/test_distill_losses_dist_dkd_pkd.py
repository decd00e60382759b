"""DIST (segmentation / classification), DKD (classification) and PKD (detection) losses.

Each loss: zero when student equals teacher, no gradient into the teacher, a value computed by
hand (numpy loops, float64) on a tiny tensor, its defining invariance, bad arguments failing
early, the loss inside the real Distiller, and its shipped recipe built and stepped (2 Runner
iterations on tiny data made by the shared helpers).
"""
from __future__ import annotations

import math
import os
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import rtkd  # noqa: F401
from rtkd.distill.losses import DISTLoss, DKDLoss, HintonKD, PKDLoss
from helpers import (RECIPE_NAME, ROOT, assert_no_teacher_grad, cls_runner_config,
                     det_runner_config, det_sample, make_tiny_coco, make_tiny_folder, rand,
                     retinanet, seg_model, tiny_data_options, write_teacher)

DIST_RECIPE = osp.join(
    ROOT, 'configs/distill/seg/dist/'
    'dist_logits_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py')
DKD_RECIPE = osp.join(
    ROOT, 'configs/distill/cls/dkd/'
    'dkd_logits_resnet34_resnet18_8xb16-200e_cifar10-32x32.py')
PKD_RECIPE = osp.join(
    ROOT, 'configs/distill/det/pkd/'
    'pkd_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-2x_coco-1333x800.py')
FT3000 = osp.join(ROOT, '..', 'shared', 'teachers', 'bisenetv2_camvid-240x320_ft3000.pth')


def labels_tensor(*values):
    return torch.tensor(values, dtype=torch.long)


# =============================================================================== DIST
def np_dist(s, t, tau, beta, gamma, eps=1e-8):
    """Explicit loops: rows = samples (2-D) or pixels of the batch (4-D)."""
    rows_s, rows_t = [], []
    if s.ndim == 2:
        rows_s, rows_t = list(s), list(t)
    else:
        n, c, h, w = s.shape
        for i in range(n):
            for y in range(h):
                for x in range(w):
                    rows_s.append(s[i, :, y, x])
                    rows_t.append(t[i, :, y, x])

    def softmax(v):
        e = [math.exp(a / tau) for a in v]
        return [a / sum(e) for a in e]

    ys = [softmax(r) for r in rows_s]
    yt = [softmax(r) for r in rows_t]

    def pearson(a, b):
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
        na = math.sqrt(sum((x - ma)**2 for x in a))
        nb = math.sqrt(sum((y - mb)**2 for y in b))
        return num / (na * nb + eps)

    m, c = len(ys), len(ys[0])
    inter = 1 - sum(pearson(ys[k], yt[k]) for k in range(m)) / m
    intra = 1 - sum(
        pearson([ys[k][j] for k in range(m)], [yt[k][j] for k in range(m)]) for j in range(c)) / c
    return tau**2 * (beta * inter + gamma * intra)


def test_dist_zero_when_student_equals_teacher():
    for shape in ((2, 5, 3, 4), (6, 10)):
        t = rand(*shape, seed=3) * 3
        assert DISTLoss()(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
        # the official eps (1e-8, added to the norm product) leaves ~eps / ||y - mean||^2 per
        # row: visible for the flat distributions of tau 4; a smaller eps removes it
        assert DISTLoss(tau=4.0)(t.clone(), t).item() == pytest.approx(0.0, abs=1e-4)
        assert DISTLoss(tau=4.0, eps=1e-14)(t.clone(), t).item() == pytest.approx(0.0, abs=1e-9)
    assert DISTLoss()(rand(2, 5, 3, 4, seed=1), rand(2, 5, 3, 4, seed=2)).item() > 0.1


def test_dist_no_teacher_gradient():
    assert_no_teacher_grad(DISTLoss(tau=2.0), rand(2, 4, 3, 3, seed=1), rand(2, 4, 3, 3, seed=2))
    assert_no_teacher_grad(DISTLoss(), rand(5, 7, seed=1), rand(5, 7, seed=2))


def test_dist_value_by_hand():
    s, t = rand(2, 3, 2, 3, seed=4) * 2, rand(2, 3, 2, 3, seed=5) * 2
    got = DISTLoss(tau=2.0, beta=0.7, gamma=1.3, loss_weight=1.5)(s, t)
    want = 1.5 * np_dist(s.numpy(), t.numpy(), 2.0, 0.7, 1.3)
    assert got.item() == pytest.approx(want, rel=1e-10)
    # classification logits (N x C), the official CIFAR setting tau 4
    s2, t2 = rand(4, 5, seed=6) * 3, rand(4, 5, seed=7) * 3
    assert DISTLoss(tau=4.0)(s2, t2).item() == pytest.approx(
        np_dist(s2.numpy(), t2.numpy(), 4.0, 1.0, 1.0), rel=1e-10)
    # beta / gamma select the two terms
    inter = DISTLoss(beta=1.0, gamma=0.0)(s, t).item()
    intra = DISTLoss(beta=0.0, gamma=1.0)(s, t).item()
    assert inter == pytest.approx(np_dist(s.numpy(), t.numpy(), 1.0, 1.0, 0.0), rel=1e-10)
    assert intra == pytest.approx(np_dist(s.numpy(), t.numpy(), 1.0, 0.0, 1.0), rel=1e-10)


def test_dist_invariant_to_a_per_pixel_constant():
    s, t = rand(2, 5, 3, 4, seed=8), rand(2, 5, 3, 4, seed=9)
    loss = DISTLoss(tau=2.0)
    shift = rand(2, 1, 3, 4, seed=10) * 10  # one constant per pixel, the same for all classes
    assert torch.allclose(loss(s + shift, t), loss(s, t), rtol=1e-9, atol=1e-12)
    assert torch.allclose(loss(s, t + shift), loss(s, t), rtol=1e-9, atol=1e-12)
    # a per-class offset does change the class distribution (the check has teeth)
    per_class = rand(1, 5, 1, 1, seed=11) * 3
    assert not torch.allclose(loss(s + per_class, t), loss(s, t), rtol=1e-3)


def test_dist_bad_arguments_fail_early():
    with pytest.raises(ValueError, match='tau'):
        DISTLoss(tau=0)
    with pytest.raises(ValueError, match='beta must be'):
        DISTLoss(beta=-1.0)
    with pytest.raises(ValueError, match='both 0'):
        DISTLoss(beta=0.0, gamma=0.0)
    with pytest.raises(ValueError, match='N x C x H x W'):
        DISTLoss()(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match='at least 2 classes'):
        DISTLoss()(torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3))
    with pytest.raises(ValueError, match='at least 2 predictions'):
        DISTLoss()(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match='ConvBNConnector'):
        DISTLoss()(torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match='ResizeConnector'):
        DISTLoss()(torch.randn(2, 4, 3, 3), torch.randn(2, 4, 6, 6))


# =============================================================================== DKD
def np_dkd(s, t, labels, tau, alpha, beta):
    n, c = s.shape
    tckd = nckd = 0.0
    for i in range(n):
        g = int(labels[i])

        def probs(z):
            e = [math.exp(v / tau) for v in z]
            return [v / sum(e) for v in e]

        ps, pt = probs(s[i]), probs(t[i])
        bs, bt = [ps[g], 1 - ps[g]], [pt[g], 1 - pt[g]]
        tckd += sum(bt[k] * math.log(bt[k] / bs[k]) for k in range(2))
        others = [j for j in range(c) if j != g]
        qs = [ps[j] / sum(ps[k] for k in others) for j in others]
        qt = [pt[j] / sum(pt[k] for k in others) for j in others]
        nckd += sum(qt[k] * math.log(qt[k] / qs[k]) for k in range(c - 1))
    return tau**2 * (alpha * tckd + beta * nckd) / n


def test_dkd_zero_when_student_equals_teacher():
    t = rand(4, 6, seed=1) * 3
    y = labels_tensor(0, 5, 2, 2)
    assert DKDLoss()(t.clone(), t, data_samples=y).item() == pytest.approx(0.0, abs=1e-12)
    assert DKDLoss()(rand(4, 6, seed=2), t, data_samples=y).item() > 0


def test_dkd_no_teacher_gradient():
    assert_no_teacher_grad(
        DKDLoss(), rand(3, 5, seed=1), rand(3, 5, seed=2), data_samples=labels_tensor(0, 4, 1))


def test_dkd_value_by_hand_and_labels_from_data_samples():
    from mmpretrain.structures import DataSample
    s, t = rand(3, 4, seed=3) * 2, rand(3, 4, seed=4) * 2
    y = labels_tensor(2, 0, 3)
    loss = DKDLoss(alpha=0.5, beta=3.0, tau=2.0, loss_weight=1.5)
    got = loss(s, t, data_samples=y)
    assert got.item() == pytest.approx(
        1.5 * np_dkd(s.numpy(), t.numpy(), y, 2.0, 0.5, 3.0), rel=1e-10)
    samples = [DataSample().set_gt_label(int(v)) for v in y]
    assert torch.allclose(loss(s, t, data_samples=samples), got, rtol=0, atol=0)
    # the official T 4, beta 8 defaults
    assert DKDLoss()(
        s, t, data_samples=y).item() == pytest.approx(
            np_dkd(s.numpy(), t.numpy(), y, 4.0, 1.0, 8.0), rel=1e-10)


def test_dkd_reassembles_classical_kd():
    """Paper Eq. (1): KD = TCKD + (1 - p_g^t) NCKD, per sample."""
    s, t = rand(1, 6, seed=5) * 2, rand(1, 6, seed=6) * 2
    y = labels_tensor(3)
    tau = 2.0
    p_g = torch.softmax(t / tau, dim=1)[0, 3].item()
    dkd = DKDLoss(alpha=1.0, beta=1.0 - p_g, tau=tau)(s, t, data_samples=y)
    assert dkd.item() == pytest.approx(HintonKD(tau=tau)(s, t).item(), rel=1e-10)


def test_dkd_invariant_to_a_per_sample_constant():
    s, t = rand(4, 5, seed=7), rand(4, 5, seed=8)
    y = labels_tensor(1, 1, 0, 4)
    shift = rand(4, 1, seed=9) * 10
    loss = DKDLoss(tau=3.0)
    assert torch.allclose(
        loss(s + shift, t, data_samples=y), loss(s, t, data_samples=y), rtol=1e-9, atol=1e-12)
    assert torch.allclose(
        loss(s, t + shift, data_samples=y), loss(s, t, data_samples=y), rtol=1e-9, atol=1e-12)


def test_dkd_confident_logits_stay_finite():
    s = torch.tensor([[60.0, -60.0, 0.0]], requires_grad=True)
    t = torch.tensor([[-60.0, 60.0, 0.0]])
    val = DKDLoss(tau=1.0)(s, t, data_samples=labels_tensor(0))
    val.backward()
    assert torch.isfinite(val) and val.item() > 50 and torch.isfinite(s.grad).all()


def test_dkd_bad_arguments_fail_early():
    from mmpretrain.structures import DataSample
    s, t = torch.randn(2, 4), torch.randn(2, 4)
    with pytest.raises(ValueError, match='alpha must be'):
        DKDLoss(alpha=-1.0)
    with pytest.raises(ValueError, match='both 0'):
        DKDLoss(alpha=0.0, beta=0.0)
    with pytest.raises(ValueError, match='tau'):
        DKDLoss(tau=0)
    with pytest.raises(ValueError, match="'DISTLoss' or 'HintonKD'"):
        DKDLoss()(
            torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), data_samples=labels_tensor(0, 1))
    with pytest.raises(ValueError, match='data_samples='):
        DKDLoss()(s, t)
    with pytest.raises(ValueError, match='no gt_label'):
        DKDLoss()(s, t, data_samples=[DataSample(), DataSample()])
    with pytest.raises(ValueError, match='exactly one class'):
        DKDLoss()(
            s, t, data_samples=[DataSample().set_gt_label([0, 1]),
                                DataSample().set_gt_label(1)])
    with pytest.raises(ValueError, match=r'\[0, 3\]'):
        DKDLoss()(s, t, data_samples=labels_tensor(0, 4))
    with pytest.raises(ValueError, match='one label per sample'):
        DKDLoss()(s, t, data_samples=labels_tensor(0))
    with pytest.raises(ValueError, match='soft targets'):
        DKDLoss()(s, t, data_samples=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match='ConvBNConnector'):
        DKDLoss()(s, torch.randn(2, 5), data_samples=labels_tensor(0, 1))


# =============================================================================== PKD
def np_pkd(s, t, per_sample=False, eps=1e-6):
    """Explicit loops: standardise per channel (over N, H, W or per sample over H, W)."""
    n, c, h, w = s.shape

    def standardize(f):
        out = np.zeros_like(f)
        groups = [[(i, ch) for i in range(n)] for ch in range(c)] if not per_sample else \
            [[(i, ch)] for ch in range(c) for i in range(n)]
        for g in groups:
            vals = [f[i, ch, y, x] for i, ch in g for y in range(h) for x in range(w)]
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean)**2 for v in vals) / (len(vals) - 1))
            for i, ch in g:
                for y in range(h):
                    for x in range(w):
                        out[i, ch, y, x] = (f[i, ch, y, x] - mean) / (std + eps)
        return out

    a, b = standardize(s), standardize(t)
    total = 0.0
    for i in range(n):
        for ch in range(c):
            for y in range(h):
                for x in range(w):
                    total += (a[i, ch, y, x] - b[i, ch, y, x])**2
    return total / (n * c * h * w) / 2


def test_pkd_zero_when_student_equals_teacher():
    t = rand(2, 4, 3, 5, seed=1) * 4 + 2
    assert PKDLoss()(t.clone(), t).item() == pytest.approx(0.0, abs=1e-14)
    assert PKDLoss(stats='sample')(t.clone(), t).item() == pytest.approx(0.0, abs=1e-14)
    assert PKDLoss()(rand(2, 4, 3, 5, seed=2), t).item() > 0.1


def test_pkd_no_teacher_gradient():
    assert_no_teacher_grad(PKDLoss(), rand(2, 3, 4, 4, seed=1), rand(2, 3, 4, 4, seed=2))
    s = [
        rand(2, 3, 4, 4, seed=3).requires_grad_(True),
        rand(2, 3, 2, 2, seed=4).requires_grad_(True)
    ]
    t = [
        rand(2, 3, 4, 4, seed=5).requires_grad_(True),
        rand(2, 3, 2, 2, seed=6).requires_grad_(True)
    ]
    PKDLoss()(s, t).backward()
    assert all(x.grad is None for x in t) and all(x.grad is not None for x in s)


def test_pkd_value_by_hand():
    s, t = rand(2, 2, 2, 3, seed=7) * 3 + 1, rand(2, 2, 2, 3, seed=8) * 0.5 - 2
    got = PKDLoss(loss_weight=6.0)(s, t)
    assert got.item() == pytest.approx(6.0 * np_pkd(s.numpy(), t.numpy()), rel=1e-10)
    got = PKDLoss(stats='sample')(s, t)
    assert got.item() == pytest.approx(np_pkd(s.numpy(), t.numpy(), per_sample=True), rel=1e-10)
    # equivalence stated by the paper: MSE/2 of standardised maps = 1 - Pearson r (per channel,
    # when the std is the biased one and eps = 0; here checked up to that convention)
    m = s.shape[0] * s.shape[2] * s.shape[3]
    r = torch.stack([
        torch.corrcoef(torch.stack([s[:, ch].flatten(), t[:, ch].flatten()]))[0, 1]
        for ch in range(2)
    ])
    assert PKDLoss(eps=1e-300)(s, t).item() == pytest.approx(
        ((1 - r) * (m - 1) / m).mean().item(), rel=1e-10)


def test_pkd_invariant_to_positive_per_channel_affine_map():
    s, t = rand(2, 3, 4, 5, seed=9), rand(2, 3, 4, 5, seed=10)
    a = torch.tensor([0.3, 2.0, 7.0], dtype=torch.float64).view(1, 3, 1, 1)
    b = torch.tensor([5.0, -1.0, 0.2], dtype=torch.float64).view(1, 3, 1, 1)
    for stats in ('batch', 'sample'):
        loss = PKDLoss(stats=stats)
        assert torch.allclose(loss(a * s + b, t), loss(s, t), rtol=1e-5), stats
        assert torch.allclose(loss(s, a * t + b), loss(s, t), rtol=1e-5), stats
        # a negative scale flips the correlation: not an invariance (the check has teeth)
        assert not torch.allclose(loss(-a * s + b, t), loss(s, t), rtol=1e-2), stats
    # 'sample' standardises each sample on its own: also invariant per (sample, channel)
    a2 = rand(2, 3, 1, 1, seed=11).abs() + 0.1
    assert torch.allclose(
        PKDLoss(stats='sample')(a2 * s + a2, t), PKDLoss(stats='sample')(s, t), rtol=1e-5)
    assert not torch.allclose(PKDLoss()(a2 * s + a2, t), PKDLoss()(s, t), rtol=1e-3)


def test_pkd_levels_sum_and_resize():
    s = [rand(2, 3, 4, 6, seed=12), rand(2, 3, 2, 3, seed=13)]
    t = [rand(2, 3, 4, 6, seed=14), rand(2, 3, 2, 3, seed=15)]
    loss = PKDLoss(loss_weight=2.0)
    assert torch.allclose(loss(s, t), loss(s[0], t[0]) + loss(s[1], t[1]))
    assert torch.allclose(loss(tuple(s), tuple(t)), loss(s, t))
    # spatial mismatch: the student is resized to the teacher (or the teacher to the student)
    big, small = rand(2, 3, 8, 12, seed=16), rand(2, 3, 4, 6, seed=17)
    down = F.interpolate(big, size=(4, 6), mode='bilinear', align_corners=False)
    assert torch.allclose(PKDLoss()(big, small), PKDLoss()(down, small))
    assert torch.allclose(PKDLoss(resize_stu=False)(small, big), PKDLoss()(small, down))


def test_pkd_bad_arguments_fail_early():
    with pytest.raises(ValueError, match='stats'):
        PKDLoss(stats='channel')
    with pytest.raises(ValueError, match='eps'):
        PKDLoss(eps=0)
    with pytest.raises(ValueError, match='resize_stu must be True or False'):
        PKDLoss(resize_stu='yes')
    with pytest.raises(ValueError, match='ConvBNConnector'):
        PKDLoss()(torch.randn(2, 16, 4, 4), torch.randn(2, 32, 4, 4))
    with pytest.raises(ValueError, match='2 student level'):
        PKDLoss()([torch.randn(2, 3, 4, 4)] * 2, [torch.randn(2, 3, 4, 4)])
    with pytest.raises(ValueError, match='4-D'):
        PKDLoss()(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="stats='batch'"):
        PKDLoss(stats='sample')(torch.randn(2, 3, 1, 1), torch.randn(2, 3, 1, 1))


def test_new_losses_registered():
    for name in ('DISTLoss', 'DKDLoss', 'PKDLoss'):
        assert MODELS.get(name) is not None, name
    assert DKDLoss.extra_inputs == ('data_samples', )
    assert DISTLoss.extra_inputs == () and PKDLoss.extra_inputs == ()


# ====================================================================== inside the Distiller
def _seg_samples(n=2, h=32, w=48):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 11, (1, h, w), generator=g))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def test_dist_and_pkd_inside_the_distiller(tmp_path):
    """DIST on the logits and PKD on a feature map (after a connector) of tiny mmseg models."""
    torch.manual_seed(0)
    cfg_path, ckpt = write_teacher(str(tmp_path), seg_model(8))
    model = MODELS.build(
        dict(
            type='Distiller',
            student=dict(model=seg_model(4), scope='mmseg'),
            teacher=dict(config=cfg_path, checkpoint=ckpt),
            taps=dict(
                s_logits='student:decode_head.conv_seg',
                t_logits='teacher:decode_head.conv_seg',
                s_feat='student:backbone.layer4',
                t_feat='teacher:backbone.layer4'),
            connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=32, out_channels=64)),
            losses=dict(
                loss_dist=dict(type='DISTLoss', student='s_logits', teacher='t_logits'),
                loss_pkd=dict(type='PKDLoss', loss_weight=6.0, student='s_feat',
                              teacher='t_feat'))))
    data = model.data_preprocessor(_seg_samples(), True)
    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    for name in ('loss_dist', 'loss_pkd'):
        assert losses[name].dim() == 0 and torch.isfinite(losses[name]) and losses[name] > 0
    (losses['loss_dist'] + losses['loss_pkd']).backward()
    assert model.student.decode_head.conv_seg.weight.grad.abs().sum() > 0
    assert model.connectors['s_feat'][0].conv.weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())


def test_dist_and_pkd_zero_for_a_copy_of_the_teacher(tmp_path):
    cfg_path = str(tmp_path / 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmseg'\nmodel = {seg_model(8)!r}\n")
    with DefaultScope.overwrite_default_scope('mmseg'):
        teacher = MODELS.build(seg_model(8))
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(
            dict(
                type='Distiller',
                student=dict(config=cfg_path),
                teacher=dict(config=cfg_path, checkpoint=ckpt),
                taps=dict(
                    s='student:decode_head.conv_seg',
                    t='teacher:decode_head.conv_seg',
                    sf='student:backbone.layer4',
                    tf='teacher:backbone.layer4'),
                # near-uniform logits of a random model: eps 1e-12 (the official 1e-8 leaves
                # ~1e-3 here, see DISTLoss's docstring)
                losses=dict(
                    loss_dist=dict(type='DISTLoss', eps=1e-12, student='s', teacher='t'),
                    loss_pkd=dict(type='PKDLoss', student='sf', teacher='tf'))))
    model.student.load_state_dict(model.teacher.state_dict())
    model.train()
    model.student.eval()  # same BN behaviour as the (eval) teacher
    data = model.data_preprocessor(_seg_samples(), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert losses['loss_dist'].item() == pytest.approx(0.0, abs=1e-4)
    assert losses['loss_pkd'].item() == pytest.approx(0.0, abs=1e-8)


# ---------------------------------------------------------------- classification: DKD
def classifier(depth: int, base: int = 8, num_classes: int = 3) -> dict:
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=num_classes,
            mean=[125.3, 123.0, 113.9],
            std=[51.6, 50.8, 51.3],
            to_rgb=True),
        backbone=dict(
            type='ResNet_CIFAR',
            depth=depth,
            base_channels=base,
            stem_channels=base,
            num_stages=4,
            out_indices=(3, ),
            style='pytorch'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=base * 8,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            topk=(1, )))


@pytest.fixture(scope='module')
def cls_teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp('dkd_teacher')
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmpretrain'\nmodel = {classifier(34, 16)!r}\n")
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        t = MODELS.build(classifier(34, 16))
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=t.state_dict()), ckpt)
    return cfg_path, ckpt


def cls_batch(n: int = 4) -> dict:
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 255, (3, 32, 32), generator=g, dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=[DataSample().set_gt_label(i % 3) for i in range(n)])


def test_dkd_inside_the_distiller_reads_labels_from_data_samples(cls_teacher):
    cfg = dict(
        type='Distiller',
        student=dict(model=classifier(18, 8), scope='mmpretrain'),
        teacher=dict(config=cls_teacher[0], checkpoint=cls_teacher[1]),
        taps=dict(s='student:head.fc', t='teacher:head.fc'),
        losses=dict(loss_dkd=dict(type='DKDLoss', student='s', teacher='t')))
    model = MODELS.build(cfg).train()
    assert model.loss_maps['loss_dkd']['extras'] == {'data_samples': 'data_samples'}
    d = model.data_preprocessor(cls_batch(), True)
    losses = model.loss(d['inputs'], d['data_samples'])
    losses['loss_dkd'].backward()
    assert losses['loss_dkd'].item() > 0 and 'loss' in losses
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.head.fc.weight.grad.abs().sum() > 0
    # the same value as the loss called directly on both models' logits and the labels 0,1,2,0
    with torch.no_grad():
        s = model.student(d['inputs'], mode='tensor')
        t = model.teacher(d['inputs'], mode='tensor')
    direct = DKDLoss()(s, t, data_samples=labels_tensor(0, 1, 2, 0))
    assert losses['loss_dkd'].item() == pytest.approx(direct.item(), rel=1e-5)
    assert DKDLoss()(
        s, t, data_samples=labels_tensor(1, 1, 2, 0)).item() != pytest.approx(
            direct.item(), rel=1e-5)

    # student == teacher: exactly zero DKD
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        same = MODELS.build(dict(cfg, student=dict(config=cls_teacher[0])))
    same.student.load_state_dict(same.teacher.state_dict())
    same.train()
    same.student.eval()
    d = same.data_preprocessor(cls_batch(), True)
    assert same.loss(d['inputs'], d['data_samples'])['loss_dkd'].item() == pytest.approx(
        0.0, abs=1e-7)


def _cls_runner_cfg(path: str, data_root: str, work_dir: str, model: dict) -> Config:
    return Config.fromfile(cls_runner_config(path, data_root, work_dir, model))


def test_dkd_recipe_builds_warms_up_and_steps(cls_teacher, tmp_path):
    """The shipped CIFAR-10 recipe (ResNet-34 -> ResNet-18, random teacher: no download)."""
    cfg = Config.fromfile(DKD_RECIPE)
    assert cfg.default_scope == 'mmpretrain'
    loss_cfg = cfg.model.losses.loss_dkd
    assert (loss_cfg.alpha, loss_cfg.beta, loss_cfg.tau) == (1.0, 8.0, 4.0)
    assert loss_cfg.schedule == dict(warmup_iters=20 * 391)
    model_cfg = cfg.model.copy()
    model_cfg.teacher = dict(cfg.model.teacher, checkpoint=None)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
        ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    model.train()
    assert model._factor('loss_dkd', 0, 0) == 0.0
    assert model._factor('loss_dkd', 10 * 391, 0) == pytest.approx(0.5)
    assert model._factor('loss_dkd', 20 * 391, 0) == 1.0
    log = model.train_step(cls_batch(2), ow)  # iteration 0 of the warm-up: DKD switched off
    assert log['loss_dkd'].item() == 0.0
    model.distill_iter.fill_(20 * 391)
    log = model.train_step(cls_batch(2), ow)
    assert log['loss_dkd'].item() > 0 and torch.isfinite(log['loss'])


def test_dkd_recipe_losses_run_two_runner_iterations(cls_teacher, tmp_path):
    """The recipe's loss entry (warm-up shortened) through the Runner on a tiny image folder."""
    folder = make_tiny_folder(str(tmp_path / 'data'))
    recipe = Config.fromfile(DKD_RECIPE)
    loss = recipe.model.losses.loss_dkd.to_dict()
    loss['schedule'] = dict(warmup_iters=1)
    model = dict(
        type='Distiller',
        student=dict(model=classifier(18, 8, 2), scope='mmpretrain'),
        teacher=dict(config=cls_teacher[0], checkpoint=cls_teacher[1]),
        taps=recipe.model.taps.to_dict(),
        losses=dict(loss_dkd=loss))
    # the module-scope teacher has 3 classes; this run's data has 2
    t2 = classifier(34, 16, 2)
    t_cfg = str(tmp_path / 't2.py')
    with open(t_cfg, 'w') as f:
        f.write(f"default_scope = 'mmpretrain'\nmodel = {t2!r}\n")
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        t_ckpt = str(tmp_path / 't2.pth')
        torch.save(dict(state_dict=MODELS.build(t2).state_dict()), t_ckpt)
    model['teacher'] = dict(config=t_cfg, checkpoint=t_ckpt)
    cfg = _cls_runner_cfg(str(tmp_path / 'dkd.py'), folder, str(tmp_path / 'work'), model)
    cfg.visualizer = dict(type='Visualizer', name=f'vis_{uuid.uuid4().hex}')
    runner = Runner.from_cfg(cfg)
    runner.train()
    hist = runner.message_hub.get_scalar('train/loss_dkd').data[0]
    assert hist[0] == 0.0 and hist[1] > 0  # warm-up factor 0 then 1
    assert 'accuracy/top1' in runner.test()


# ---------------------------------------------------------------- detection: PKD
def test_pkd_recipe_builds_and_steps():
    """The shipped Faster R-CNN R101 -> R50 recipe, random teacher, one 64x64 training step."""
    cfg = Config.fromfile(PKD_RECIPE)
    assert cfg.default_scope == 'mmdet'
    assert sorted(cfg.model.losses) == [f'loss_pkd_p{i}' for i in range(4)]
    assert all(v.loss_weight == 6.0 and v.type == 'PKDLoss' for v in cfg.model.losses.values())
    assert cfg.model.teacher.checkpoint.startswith('https://download.openmmlab.com/mmdetection/')
    model_cfg = cfg.model.copy()
    model_cfg.teacher = dict(cfg.model.teacher, checkpoint=None)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(model_cfg).train()
        ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.001))
        g = torch.Generator().manual_seed(0)
        data = dict(
            inputs=[torch.randint(0, 255, (3, 64, 64), generator=g, dtype=torch.uint8)],
            data_samples=[det_sample([[4, 4, 40, 30]])])
        log = model.train_step(data, ow)
    for i in range(4):
        assert torch.isfinite(log[f'loss_pkd_p{i}']) and log[f'loss_pkd_p{i}'].item() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_pkd_recipe_losses_run_two_runner_iterations(tmp_path):
    """The recipe's taps and losses on tiny RetinaNets (16 -> 32 FPN channels, connectors)."""
    coco = make_tiny_coco(str(tmp_path / 'coco'))
    t_cfg = str(tmp_path / 'teacher.py')
    with open(t_cfg, 'w') as f:
        f.write(f"default_scope = 'mmdet'\nmodel = {retinanet(16, 32)!r}\n")
    with DefaultScope.overwrite_default_scope('mmdet'):
        t_ckpt = str(tmp_path / 'teacher.pth')
        torch.save(dict(state_dict=MODELS.build(retinanet(16, 32)).state_dict()), t_ckpt)
    recipe = Config.fromfile(PKD_RECIPE)
    taps = recipe.model.taps.to_dict()
    model = dict(
        type='Distiller',
        student=dict(model=retinanet(8, 16), scope='mmdet'),
        teacher=dict(config=t_cfg, checkpoint=t_ckpt),
        taps=taps,
        connectors={
            k: dict(type='ConvBNConnector', in_channels=16, out_channels=32)
            for k in taps if k.startswith('s_')
        },
        losses=recipe.model.losses.to_dict())
    work = str(tmp_path / 'work')
    cfg = Config.fromfile(det_runner_config(str(tmp_path / 'pkd.py'), coco, work, model))
    cfg.visualizer = dict(type='DetLocalVisualizer', name=f'vis_{uuid.uuid4().hex}')
    cfg.custom_hooks = [dict(type='StudentCheckpointHook', interval=2)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = set(runner.message_hub.log_scalars)
    assert {f'train/loss_pkd_p{i}' for i in range(4)} | {'train/loss_cls'} <= scalars, scalars
    assert osp.isfile(osp.join(work, 'student_latest.pth'))


# ---------------------------------------------------------------- segmentation: DIST
def test_dist_recipe_follows_the_naming_scheme():
    m = RECIPE_NAME.match(osp.basename(DIST_RECIPE))
    assert m and m['method'] == 'dist' and m['data'] == 'camvid'
    cfg = Config.fromfile(DIST_RECIPE)
    loss = cfg.model.losses.loss_dist
    assert (loss.type, loss.tau, loss.beta, loss.gamma, loss.loss_weight) == \
        ('DISTLoss', 1.0, 1.0, 1.0, 1.0)
    assert cfg.model_wrapper_cfg.type == 'DistillerDataParallel'
    cwd = Config.fromfile(DIST_RECIPE.replace('/dist/dist_', '/cwd/cwd_'))
    assert cfg.model.teacher == cwd.model.teacher and cfg.model.student == cwd.model.student
    assert cfg.train_cfg == cwd.train_cfg and cfg.param_scheduler == cwd.param_scheduler


@pytest.mark.skipif(not osp.isfile(FT3000), reason='shared CamVid ft3000 teacher not available')
def test_dist_recipe_runs_two_runner_iterations(tmp_path, tiny_camvid):
    """The shipped recipe with the real shared teacher on the tiny CamVid, 32x48 crops."""
    cfg = Config.fromfile(DIST_RECIPE)
    cfg.merge_from_dict(tiny_data_options(tiny_camvid))
    cfg.merge_from_dict({
        'train_cfg.max_iters':
        2,
        'train_cfg.val_interval':
        100,
        'param_scheduler.0.end':
        2,
        'default_hooks.checkpoint.interval':
        100,
        'train_dataloader.dataset.pipeline.3.crop_size': (32, 48),
        'model.student':
        dict(
            _delete_=True,
            config='configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
            cfg_options={'model.data_preprocessor.size': (32, 48)})
    })
    cfg.custom_hooks = []
    cfg.work_dir = str(tmp_path / 'w')
    cfg.visualizer.name = f'vis_{uuid.uuid4().hex}'
    cwd = os.getcwd()
    os.chdir(ROOT)  # recipes are run from the repo root ('../shared/...' paths)
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
    finally:
        os.chdir(cwd)
    assert type(runner.model.teacher.backbone).__name__ == 'BiSeNetV2'
    vals = runner.message_hub.get_scalar('train/loss_dist').data[0]
    assert len(vals) == 2 and all(np.isfinite(v) and v > 0 for v in vals)
