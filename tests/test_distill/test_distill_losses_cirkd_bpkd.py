"""CIRKD (cross-image relations with class-wise memory queues) and BPKD (boundary / body regions).

Each loss: value against an explicit numpy loop on a tiny float64 tensor, zero when the student
equals the teacher, no gradient into the teacher, its invariances, the clear errors; CIRKD's
queues (enqueue order, pointer wrap, ignore pixels never enter, state_dict / resume, gathering
over ranks, the memory-fill check); both inside the real Distiller and each recipe's model for
two iterations through the mmengine Runner on tiny CamVid.
"""
from __future__ import annotations

import os.path as osp
import uuid

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import HOOKS, MODELS
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import rtkd  # noqa: F401
from rtkd.distill.losses import BPKDLoss, CIRKDLoss
from rtkd.distill.losses.bpkd_loss import edge_body_masks
from helpers import (ROOT, assert_no_teacher_grad, np_softmax, rand, seg_model, tiny_data_options,
                     write_teacher)

TEACHER = osp.join(ROOT, '..', 'shared', 'teachers', 'bisenetv2_camvid-240x320_ft3000.pth')
CIRKD_RECIPE = 'configs/distill/seg/cirkd/' \
    'cirkd_logits-feat_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py'
BPKD_RECIPE = 'configs/distill/seg/bpkd/' \
    'bpkd_logits_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py'


def samples(labels: torch.Tensor) -> list:
    """SegDataSamples holding ``labels`` (N x H x W) as gt_sem_seg."""
    out = []
    for lab in labels:
        d = SegDataSample()
        d.gt_sem_seg = PixelData(data=lab[None].long())
        out.append(d)
    return out


def np_kl_rows(t_logits, s_logits):
    """Sum over rows of KL(softmax(t) || softmax(s)), softmax over the last axis."""
    pt, ps = np_softmax(t_logits, -1), np_softmax(s_logits, -1)
    return float((pt * (np.log(pt) - np.log(ps))).sum())


def unit(x, axis):
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def memory_loss(**kw) -> CIRKDLoss:
    """A memory-only CIRKDLoss (mini-batch term off), 2 classes, 3-d entries, no projector."""
    args = dict(
        num_classes=2,
        student_channels=3,
        teacher_channels=3,
        minibatch_weight=0.0,
        memory_pixel_weight=1.0,
        memory_region_weight=1.0,
        pixel_memory_size=3,
        region_memory_size=2,
        pixel_contrast_size=4,
        region_contrast_size=2,
        pixel_update_freq=2,
        with_projector=False)
    args.update(kw)
    return CIRKDLoss(**args)


# ------------------------------------------------------------------ CIRKD: mini-batch term
def test_cirkd_minibatch_value_by_hand():
    n, cs, ct, h, w = 2, 3, 4, 2, 3
    s, t = rand(n, cs, h, w, seed=1), rand(n, ct, h, w, seed=2)
    loss = CIRKDLoss(
        num_classes=2,
        student_channels=cs,
        teacher_channels=ct,
        memory_pixel_weight=0.0,
        memory_region_weight=0.0,
        minibatch_weight=1.5)
    fs = unit(s.numpy().reshape(n, cs, -1), 1)
    ft = unit(t.numpy().reshape(n, ct, -1), 1)
    expected = 0.0
    for i in range(n):
        for j in range(n):
            ss = fs[i].T @ fs[j] / 0.1  # HW x HW, rows: pixels of image i
            st = ft[i].T @ ft[j] / 0.1
            expected += np_kl_rows(st, ss) / (h * w)  # official: kl_div 'batchmean' over rows
    expected = 1.5 * expected / n**2
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-9)
    # the official v1 pooling option: the same term on 2x2-average-pooled maps
    pooled = CIRKDLoss(
        num_classes=2,
        student_channels=cs,
        teacher_channels=ct,
        memory_pixel_weight=0.0,
        memory_region_weight=0.0,
        minibatch_pool=2)
    ref = CIRKDLoss(
        num_classes=2,
        student_channels=cs,
        teacher_channels=ct,
        memory_pixel_weight=0.0,
        memory_region_weight=0.0)
    assert torch.allclose(
        pooled(s, t),
        ref.minibatch_loss(
            F.avg_pool2d(s, 2, 2, ceil_mode=True), F.avg_pool2d(t, 2, 2, ceil_mode=True)))


def test_cirkd_minibatch_zero_invariance_grad():
    s, t = rand(3, 4, 2, 3, seed=1), rand(3, 4, 2, 3, seed=2)
    loss = CIRKDLoss(
        num_classes=2,
        student_channels=4,
        teacher_channels=4,
        memory_pixel_weight=0.0,
        memory_region_weight=0.0)
    assert loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    # L2-normalised embeddings: a positive scale per pixel of the student changes nothing
    scale = rand(3, 1, 2, 3, seed=3).abs() + 0.5
    assert torch.allclose(loss(s * scale, t), loss(s, t), atol=1e-12)
    assert loss(s, t).item() > 0
    assert_no_teacher_grad(loss, s, t)


# ------------------------------------------------------------------ CIRKD: memory terms
def test_cirkd_memory_value_by_hand():
    g = torch.Generator().manual_seed(0)
    loss = memory_loss(memory_pixel_weight=1.0, memory_region_weight=0.5, loss_weight=2.0)
    loss = loss.double().eval()  # eval: no enqueue, the queues are the ones set here
    loss.pixel_queue.copy_(
        F.normalize(torch.randn(2, 3, 3, generator=g, dtype=torch.float64), dim=2))
    loss.region_queue.copy_(
        F.normalize(torch.randn(2, 2, 3, generator=g, dtype=torch.float64), dim=2))
    assert (loss.pixel_per_class, loss.region_per_class) == (3, 2)  # every entry is contrasted
    s, t = rand(2, 3, 2, 2, seed=1), rand(2, 3, 2, 2, seed=2)
    labels = torch.tensor([[[0, 1], [255, 1]], [[0, 0], [1, 255]]])
    value = loss(s, t, data_samples=samples(labels)).item()

    keep = labels.numpy().reshape(-1) != 255
    sa = unit(s.numpy().transpose(0, 2, 3, 1).reshape(-1, 3), 1)[keep]
    ta = unit(t.numpy().transpose(0, 2, 3, 1).reshape(-1, 3), 1)[keep]

    def term(queue):
        bank = queue.numpy().reshape(-1, 3)  # the order of the entries does not matter
        return np_kl_rows(ta @ bank.T / 0.1, sa @ bank.T / 0.1) / len(sa)

    expected = 2.0 * (1.0 * term(loss.pixel_queue) + 0.5 * term(loss.region_queue))
    assert value == pytest.approx(expected, rel=1e-9)


def test_cirkd_memory_zero_grad_and_projector():
    labels = torch.randint(0, 2, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    t = rand(2, 3, 4, 4, seed=2)
    loss = memory_loss(pixel_memory_size=8, region_memory_size=4)
    assert loss(t.float(), t.float(), data_samples=samples(labels)).item() == \
        pytest.approx(0.0, abs=1e-6)
    # with the official projection head: the student (and the head) get gradients, not the teacher
    proj = CIRKDLoss(
        num_classes=2,
        student_channels=5,
        teacher_channels=3,
        minibatch_weight=0.0,
        pixel_memory_size=8,
        region_memory_size=4,
        pixel_contrast_size=4,
        region_contrast_size=2,
        pixel_update_freq=4)
    assert_no_teacher_grad(
        proj, rand(2, 5, 4, 4, seed=1).float(), t.float(), data_samples=samples(labels))
    assert all(p.grad is not None for p in proj.projector.parameters())
    assert isinstance(proj.projector[1], torch.nn.BatchNorm2d)


def test_cirkd_term_weights_combine_and_zero_switches_a_term_off():
    labels = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(1))
    s, t = rand(2, 4, 4, 4, seed=1).float(), rand(2, 4, 4, 4, seed=2).float()
    # contrast sizes that take every queue entry (3 and 2 per class): no sampling randomness
    kw = dict(
        num_classes=3,
        student_channels=4,
        teacher_channels=4,
        pixel_memory_size=3,
        region_memory_size=2,
        pixel_contrast_size=6,
        region_contrast_size=3,
        pixel_update_freq=3,
        with_projector=False)
    both = CIRKDLoss(
        **kw,
        minibatch_weight=1.0,
        memory_pixel_weight=0.1,
        memory_region_weight=0.1,
        loss_weight=3.0).eval()

    def value(**w):
        loss = CIRKDLoss(**kw, **w).eval()
        for name in ('pixel_queue', 'region_queue'):
            if hasattr(loss, name):
                getattr(loss, name).copy_(getattr(both, name))
        return loss(s, t, data_samples=samples(labels))

    mb = value(minibatch_weight=1.0, memory_pixel_weight=0.0, memory_region_weight=0.0)
    pix = value(minibatch_weight=0.0, memory_pixel_weight=1.0, memory_region_weight=0.0)
    reg = value(minibatch_weight=0.0, memory_pixel_weight=0.0, memory_region_weight=1.0)
    total = both(s, t, data_samples=samples(labels))
    assert min(mb, pix, reg) > 0
    assert torch.allclose(total, 3.0 * (mb + 0.1 * pix + 0.1 * reg), rtol=1e-5)
    off = CIRKDLoss(**kw, memory_pixel_weight=0.0)
    assert not hasattr(off, 'pixel_queue') and hasattr(off, 'region_queue')


# ------------------------------------------------------------------ CIRKD: queues
def test_cirkd_enqueue_order_pointer_wrap_and_ignore_never_enters():
    loss = CIRKDLoss(
        num_classes=3,
        student_channels=2,
        teacher_channels=2,
        minibatch_weight=0.0,
        pixel_memory_size=5,
        region_memory_size=2,
        pixel_contrast_size=3,
        region_contrast_size=3,
        pixel_update_freq=2,
        with_projector=False)
    init_class2 = loss.pixel_queue[2].clone()
    # one image, 1 x 4 pixels: class 0 on three pixels, class 1 on one, one ignored pixel
    feats = torch.tensor([[[[1.0, 0.0, 1.0, 0.0, -1.0]], [[0.0, 1.0, 1.0, 2.0, -1.0]]]])
    labels = torch.tensor([[[0, 0, 0, 1, 255]]])
    keys = F.normalize(feats, dim=1)
    class0 = {tuple(np.round(v, 6)) for v in keys[0, :, 0, :3].t().numpy()}
    for step in range(3):
        loss.enqueue(keys, labels, loss._generator())
        if step == 0:
            # region: the normalised mean of class 0's pixels in slot 0, pointer 1
            mean0 = F.normalize(keys[0, :, 0, :3].mean(1), dim=0)
            assert torch.allclose(loss.region_queue[0, 0], mean0)
            assert torch.allclose(loss.region_queue[1, 0], keys[0, :, 0, 3])
            assert loss.region_ptr.tolist() == [1, 1, 0]
            # pixels: min(3, update_freq=2) pixels of class 0 in slots 0-1, pointer 2
            assert loss.pixel_ptr.tolist() == [2, 1, 0]
            got = {tuple(np.round(v, 6)) for v in loss.pixel_queue[0, :2].numpy()}
            assert got <= class0 and len(got) == 2
        if step == 1:
            assert loss.pixel_ptr.tolist() == [4, 2, 0]
    # third step: 4 + 2 >= 5 -> the last two slots, pointer back to 0 (official); regions wrap
    assert loss.pixel_ptr.tolist() == [0, 3, 0]
    assert loss.region_ptr.tolist() == [1, 1, 0]
    assert {tuple(np.round(v, 6)) for v in loss.pixel_queue[0, 3:].numpy()} <= class0
    assert torch.allclose(loss.pixel_queue[1, :3], keys[0, :, 0, 3].expand(3, 2))
    # the ignored pixel's direction (-1, -1) is nowhere; an absent class stays untouched
    ignored = F.normalize(torch.tensor([-1.0, -1.0]), dim=0)
    for q in (loss.pixel_queue[:2].reshape(-1, 2), loss.region_queue[:2, :1].reshape(-1, 2)):
        assert not torch.isclose(q, ignored, atol=1e-6).all(1).any()
    assert torch.equal(loss.pixel_queue[2], init_class2)
    assert int(loss.num_updates) == 3


def test_cirkd_enqueues_in_training_only_and_queues_resume():
    labels = torch.randint(0, 2, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    s, t = rand(2, 3, 4, 4, seed=1).float(), rand(2, 3, 4, 4, seed=2).float()
    loss = memory_loss(pixel_memory_size=40, region_memory_size=4)
    before = loss.pixel_queue.clone()
    loss.eval()(s, t, data_samples=samples(labels))
    assert torch.equal(loss.pixel_queue, before) and int(loss.num_updates) == 0
    loss.train()(s, t, data_samples=samples(labels))
    assert not torch.equal(loss.pixel_queue, before) and int(loss.num_updates) == 1
    sd = loss.state_dict()
    assert {'pixel_queue', 'pixel_ptr', 'region_queue', 'region_ptr', 'num_updates'} <= set(sd)
    # a fresh loss loaded from the state dict continues exactly like the original
    fresh = memory_loss(pixel_memory_size=40, region_memory_size=4)
    resumed = memory_loss(pixel_memory_size=40, region_memory_size=4)
    resumed.load_state_dict(sd)
    c = fresh(s, t, data_samples=samples(labels))
    a = loss(s, t, data_samples=samples(labels))
    b = resumed(s, t, data_samples=samples(labels))
    assert not torch.equal(a, c)  # without the state the queues restart from scratch
    assert torch.equal(a, b) and torch.equal(loss.pixel_queue, resumed.pixel_queue)
    assert torch.equal(loss.pixel_ptr, resumed.pixel_ptr)


def test_cirkd_gathers_all_ranks_before_enqueue(monkeypatch):
    import mmengine.dist as mdist
    other = {}

    def fake_all_gather(x):  # rank 1's tensors: its shape, its labels, its (flipped) features
        if x.dim() == 1:
            return [x, other.get('shape', x)]
        if x.dtype == torch.long:
            return [x, other['labels']]
        return [x, x.flip(-1)]

    monkeypatch.setattr(mdist, 'get_world_size', lambda *a, **k: 2)
    monkeypatch.setattr(mdist, 'all_gather', fake_all_gather)
    loss = CIRKDLoss(
        num_classes=2,
        student_channels=2,
        teacher_channels=2,
        minibatch_weight=0.0,
        pixel_memory_size=8,
        region_memory_size=4,
        pixel_contrast_size=2,
        region_contrast_size=2,
        pixel_update_freq=2,
        with_projector=False)
    keys = F.normalize(torch.rand(1, 2, 1, 2) + 0.1, dim=1)
    mine, theirs = torch.tensor([[[0, 0]]]), torch.tensor([[[1, 1]]])
    other['labels'] = theirs
    loss.enqueue(keys, mine, loss._generator())
    # this rank saw only class 0, but class 1 from the other rank entered too
    assert loss.region_ptr.tolist() == [1, 1] and loss.pixel_ptr.tolist() == [2, 2]
    other['shape'] = torch.tensor([2, 2, 1, 2])
    with pytest.raises(ValueError, match='same batch size and crop size'):
        loss.enqueue(keys, mine, loss._generator())


def _ddp_enqueue_worker(rank: int, port: int, out_dir: str) -> None:
    """One of two gloo ranks: a training forward on rank-specific data, then save the queues."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    try:
        loss = CIRKDLoss(
            num_classes=3,
            student_channels=2,
            teacher_channels=2,
            minibatch_weight=0.0,
            pixel_memory_size=8,
            region_memory_size=4,
            pixel_contrast_size=3,
            region_contrast_size=3,
            pixel_update_freq=2,
            with_projector=False)
        t = torch.rand(1, 2, 2, 2, generator=torch.Generator().manual_seed(rank)) + 0.1
        labels = torch.full((1, 2, 2), rank)  # rank 0 sees only class 0, rank 1 only class 1
        loss.train()(t.clone(), t, data_samples=samples(labels))
        torch.save(loss.state_dict(), osp.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_cirkd_two_gloo_ranks_hold_identical_queues(tmp_path):
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_enqueue_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    sd0, sd1 = (torch.load(str(tmp_path / f'rank{r}.pth')) for r in (0, 1))
    assert sd0.keys() == sd1.keys()
    assert all(torch.equal(sd0[k], sd1[k]) for k in sd0)  # every rank holds the same queues
    assert sd0['region_ptr'].tolist() == [1, 1, 0]  # both ranks' classes entered on each rank
    assert sd0['pixel_ptr'].tolist() == [2, 2, 0]


# ------------------------------------------------------------------ CIRKD: errors, memory check
def test_cirkd_clear_errors():
    with pytest.raises(ValueError, match='pixel_contrast_size'):
        memory_loss(pixel_memory_size=3, pixel_contrast_size=10)
    with pytest.raises(ValueError, match='region_memory_size'):
        memory_loss(region_memory_size=2, region_contrast_size=8)
    with pytest.raises(ValueError, match='at least one'):
        memory_loss(memory_pixel_weight=0.0, memory_region_weight=0.0)
    with pytest.raises(ValueError, match='student_channels == teacher_channels'):
        memory_loss(student_channels=4)
    with pytest.raises(ValueError, match='>= 0'):
        memory_loss(memory_pixel_weight=-1.0)
    with pytest.raises(ValueError, match='pixel_update_freq <= pixel_memory_size'):
        memory_loss(pixel_update_freq=4)
    loss = memory_loss(pixel_memory_size=8, region_memory_size=4)
    s = rand(1, 3, 2, 2).float()
    with pytest.raises(ValueError, match='gt_sem_seg'):
        loss(s, s)
    with pytest.raises(ValueError, match=r'label value 7 .*num_classes'):
        loss(s, s, data_samples=samples(torch.tensor([[[0, 7], [1, 255]]])))
    with pytest.raises(ValueError, match='teacher_channels=3'):
        loss(s, rand(1, 4, 2, 2).float(), data_samples=samples(torch.zeros(1, 2, 2)))
    with pytest.raises(ValueError, match='ResizeConnector'):
        loss(s, rand(1, 3, 4, 4).float(), data_samples=samples(torch.zeros(1, 2, 2)))


def test_memory_bank_check_hook_stops_with_the_setting_to_lower():
    loss = CIRKDLoss(
        num_classes=2,
        student_channels=2,
        teacher_channels=2,
        pixel_memory_size=100,
        region_memory_size=10,
        pixel_contrast_size=2,
        region_contrast_size=2)
    with pytest.raises(ValueError, match=r'region_memory_size=10 .* set region_memory_size <= 9'):
        loss.check_memory_fill(9)
    assert not loss.memory_checked
    loss.check_memory_fill(10)  # 10 regions, 16 x 10 = 160 >= 100 pixels: fits
    assert loss.memory_checked
    pixels = CIRKDLoss(
        num_classes=2,
        student_channels=2,
        teacher_channels=2,
        pixel_memory_size=200,
        region_memory_size=2,
        pixel_contrast_size=2,
        region_contrast_size=2)
    with pytest.raises(ValueError, match=r'pixel_memory_size=200 .* set pixel_memory_size <= 160'):
        pixels.check_memory_fill(10)

    class Runner:  # what the hook reads: the (wrapped) model and the train set's length
        model = torch.nn.Module()
        train_dataloader = type('L', (), {'dataset': list(range(5))})()

    Runner.model.module = torch.nn.ModuleDict(dict(loss=loss))
    hook = HOOKS.build(dict(type='MemoryBankCheckHook'))
    with pytest.raises(ValueError, match='set region_memory_size <= 5'):
        hook.before_train(Runner())


# ------------------------------------------------------------------ BPKD
def test_edge_body_masks_by_hand():
    labels = torch.tensor([[[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 255],
                            [2, 2, 2, 2, 255, 255]]])
    edge, body = edge_body_masks(labels, 3, 255)
    expected = torch.tensor(
        [[[0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]]],
        dtype=torch.bool)
    assert torch.equal(edge, expected)
    valid = labels != 255
    assert torch.equal(body, valid & ~expected) and not (edge & ~valid).any()
    wide, _ = edge_body_masks(labels[:, :2], 5, 255)  # a 4-pixel band across the 0|1 change
    assert wide[0, 0].tolist() == [False, True, True, True, True, False]


def test_bpkd_value_by_hand():
    n, c, h, w = 2, 3, 3, 4
    s, t = rand(n, c, h, w, seed=1), rand(n, c, h, w, seed=2)
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 255]],
                           [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 0, 0]]])
    loss = BPKDLoss(edge_tau=2.0, body_tau=3.0, edge_weight=1.5, body_weight=0.5, loss_weight=2.0)
    edge, body = (m.numpy() for m in edge_body_masks(labels, 3, 255))
    sn, tn = s.numpy(), t.numpy()
    e_sum, e_cnt = 0.0, 0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if edge[i, y, x]:
                    e_sum += np_kl_rows(tn[i, :, y, x] / 2.0, sn[i, :, y, x] / 2.0)
                    e_cnt += 1
    b_sum = 0.0
    for i in range(n):
        for k in range(c):
            pos = body[i]
            b_sum += np_kl_rows(tn[i, k][pos] / 3.0, sn[i, k][pos] / 3.0)
    expected = 2.0 * (1.5 * e_sum / e_cnt * 4.0 + 0.5 * b_sum / (n * c) * 9.0)
    assert e_cnt > 0 and body.any(axis=(1, 2)).all()
    assert loss(s, t, data_samples=samples(labels)).item() == pytest.approx(expected, rel=1e-9)


def test_bpkd_zero_invariances_locality_grad():
    labels = torch.tensor([[[0, 0, 0, 1, 1, 1]] * 4 + [[2] * 6] * 2, [[1, 1, 1, 1, 0, 0]] * 6])
    ds = samples(labels)
    s, t = rand(2, 3, 6, 6, seed=1), rand(2, 3, 6, 6, seed=2)
    edge, body = edge_body_masks(labels, 3, 255)
    both = BPKDLoss()
    edge_only = BPKDLoss(body_weight=0.0)
    body_only = BPKDLoss(edge_weight=0.0)
    assert both(t, t, data_samples=ds).item() == pytest.approx(0.0, abs=1e-12)
    # edge term: per-pixel class softmax -> a per-pixel constant changes nothing
    pix = rand(2, 1, 6, 6, seed=3) * 5
    assert torch.allclose(edge_only(s + pix, t, data_samples=ds), edge_only(s, t, data_samples=ds))
    # body term: per-(image, class) spatial softmax -> a per-channel constant changes nothing
    chan = rand(2, 3, 1, 1, seed=4) * 5
    assert torch.allclose(body_only(s + chan, t, data_samples=ds), body_only(s, t, data_samples=ds))
    # each term only sees its own region
    noise = rand(2, 3, 6, 6, seed=5) * 3
    s_edge_changed = torch.where(edge[:, None], s + noise, s)
    s_body_changed = torch.where(body[:, None], s + noise, s)
    assert torch.allclose(
        body_only(s_edge_changed, t, data_samples=ds), body_only(s, t, data_samples=ds))
    assert torch.allclose(
        edge_only(s_body_changed, t, data_samples=ds), edge_only(s, t, data_samples=ds))
    assert not torch.allclose(
        body_only(s_body_changed, t, data_samples=ds), body_only(s, t, data_samples=ds))
    assert_no_teacher_grad(both, s, t, data_samples=ds)


def test_bpkd_images_without_body_or_edges_and_errors():
    # image 0: only edges and ignore (no body); image 1: one class, no edge
    labels = torch.tensor([[[0, 1], [255, 255]], [[2, 2], [2, 2]]])
    s, t = rand(2, 3, 2, 2, seed=1), rand(2, 3, 2, 2, seed=2)
    loss = BPKDLoss(edge_weight=0.0)
    v = loss(s, t, data_samples=samples(labels))
    only_img1 = loss(s[1:], t[1:], data_samples=samples(labels[1:]))
    assert torch.allclose(v, only_img1)  # image 0 adds nothing and does not dilute the mean
    assert_no_teacher_grad(BPKDLoss(), s, t, data_samples=samples(labels))
    no_edge = BPKDLoss(body_weight=0.0)(s[1:], t[1:], data_samples=samples(labels[1:]))
    assert no_edge.item() == 0.0
    with pytest.raises(ValueError, match='odd integer'):
        BPKDLoss(edge_width=4)
    with pytest.raises(ValueError, match='>= 0'):
        BPKDLoss(edge_weight=-1)
    with pytest.raises(ValueError, match='both 0'):
        BPKDLoss(edge_weight=0, body_weight=0)
    with pytest.raises(ValueError, match='gt_sem_seg'):
        BPKDLoss()(s, t)
    with pytest.raises(ValueError, match='ConvBNConnector'):
        BPKDLoss()(s, rand(2, 4, 2, 2), data_samples=samples(labels))


# ------------------------------------------------------------------ inside the real Distiller
def test_cirkd_and_bpkd_inside_the_distiller(tmp_path):
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
                s_embed='student:decode_head.conv_seg#in',
                t_embed='teacher:decode_head.conv_seg#in'),
            losses=dict(
                loss_kd=dict(type='HintonKD', student='s_logits', teacher='t_logits'),
                loss_cirkd=dict(
                    type='CIRKDLoss',
                    num_classes=11,
                    student_channels=8,
                    teacher_channels=16,
                    pixel_memory_size=64,
                    region_memory_size=8,
                    pixel_contrast_size=44,
                    region_contrast_size=22,
                    student='s_embed',
                    teacher='t_embed'),
                loss_bpkd=dict(type='BPKDLoss', student='s_logits', teacher='t_logits'))))
    g = torch.Generator().manual_seed(0)
    ds = []
    for _ in range(2):
        d = SegDataSample()
        lab = torch.randint(0, 11, (1, 32, 48), generator=g)
        lab[:, -4:] = 255
        d.gt_sem_seg = PixelData(data=lab)
        d.set_metainfo(dict(img_shape=(32, 48), ori_shape=(32, 48), pad_shape=(32, 48)))
        ds.append(d)
    data = model.data_preprocessor(
        dict(
            inputs=[
                torch.randint(0, 255, (3, 32, 48), generator=g, dtype=torch.uint8) for _ in range(2)
            ],
            data_samples=ds), True)
    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    for name in ('loss_kd', 'loss_cirkd', 'loss_bpkd'):
        assert losses[name].dim() == 0 and torch.isfinite(losses[name]) and losses[name] > 0
    (losses['loss_cirkd'] + losses['loss_bpkd']).backward()
    cirkd = model.losses['loss_cirkd']
    assert all(p.grad is not None for p in cirkd.projector.parameters())
    assert int(cirkd.num_updates) == 1 and int(cirkd.pixel_ptr.sum()) > 0
    assert 'losses.loss_cirkd.pixel_queue' in model.state_dict()


# ------------------------------------------------------------------ recipes through the Runner
def recipe_cfg(path: str, tiny_camvid: str, work_dir: str, max_iters: int = 2) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, path))
    cfg.merge_from_dict(tiny_data_options(tiny_camvid))
    cfg.merge_from_dict({
        'train_cfg.max_iters':
        max_iters,
        'train_cfg.val_interval':
        100,
        'default_hooks.checkpoint.interval':
        2,
        'default_hooks.logger.interval':
        1,
        'train_dataloader.dataset.pipeline.3.crop_size': (32, 48),
        'model.student':
        dict(
            _delete_=True,
            config='configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
            cfg_options={'model.data_preprocessor.size': (32, 48)})
    })
    cfg.work_dir = work_dir
    cfg.visualizer.name = f'vis_{uuid.uuid4().hex}'
    return cfg


@pytest.mark.skipif(not osp.isfile(TEACHER), reason='shared CamVid teacher not available')
def test_cirkd_recipe_runner_memory_check_two_iterations_and_resume(tiny_camvid, tmp_path):
    from mmengine.runner import Runner
    cfg = recipe_cfg(CIRKD_RECIPE, tiny_camvid, str(tmp_path / 'w0'))
    m = cfg.model
    assert [h.type for h in cfg.custom_hooks] == ['StudentCheckpointHook', 'MemoryBankCheckHook']
    assert (m.losses.loss_kd.type, m.losses.loss_kd.tau, m.losses.loss_kd.loss_weight) == \
        ('HintonKD', 1.0, 1.0)
    c = m.losses.loss_cirkd
    assert (c.minibatch_weight, c.memory_pixel_weight, c.memory_region_weight) == (1.0, 0.1, 0.1)
    assert (c.contrast_tau, c.contrast_kd_tau, c.pixel_contrast_size, c.region_contrast_size) == \
        (0.1, 1.0, 4096, 1024)
    # the recipe's queues (sized for CamVid's 367 images) do not fit 4 tiny images: stop first
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='set region_memory_size <= 4'):
        runner.train()
    assert runner.iter == 0 and not osp.exists(osp.join(str(tmp_path / 'w0'), 'iter_2.pth'))

    work = str(tmp_path / 'w')
    sizes = {
        'model.losses.loss_cirkd.region_memory_size': 4,
        'model.losses.loss_cirkd.pixel_memory_size': 64,
        'model.losses.loss_cirkd.pixel_contrast_size': 110,
        'model.losses.loss_cirkd.region_contrast_size': 11
    }
    cfg = recipe_cfg(CIRKD_RECIPE, tiny_camvid, work)
    cfg.merge_from_dict(sizes)
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert {'train/loss_kd', 'train/loss_cirkd', 'train/decode.loss_ce'} <= set(scalars)
    assert type(runner.model.student.backbone).__name__ == 'RTFastSCNN'
    assert type(runner.model.teacher.backbone).__name__ == 'BiSeNetV2'
    sd = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu')['state_dict']
    assert int(sd['losses.loss_cirkd.num_updates']) == 2
    assert sd['losses.loss_cirkd.pixel_queue'].shape == (11, 64, 1024)
    # --resume continues the queues (a fresh loss would count 1 update, not 3)
    cfg = recipe_cfg(CIRKD_RECIPE, tiny_camvid, work, max_iters=3)
    cfg.merge_from_dict(sizes)
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    loss = runner.model.losses['loss_cirkd']
    assert runner.iter == 3 and int(loss.num_updates) == 3


@pytest.mark.skipif(not osp.isfile(TEACHER), reason='shared CamVid teacher not available')
def test_bpkd_recipe_runner_two_iterations(tiny_camvid, tmp_path):
    from mmengine.runner import Runner
    cfg = recipe_cfg(BPKD_RECIPE, tiny_camvid, str(tmp_path / 'w'))
    b = cfg.model.losses.loss_bpkd
    assert list(cfg.model.losses) == ['loss_bpkd']
    assert (b.edge_width, b.edge_weight, b.body_weight, b.ignore_index) == (3, 10.0, 3.0, 255)
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert {'train/loss_bpkd', 'train/decode.loss_ce'} <= set(scalars)
    assert runner.iter == 2 and np.isfinite(scalars['train/loss_bpkd'].current())
