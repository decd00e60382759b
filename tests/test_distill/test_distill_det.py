"""Detection distillation (mmdet): FGFI masks and loss, CWD/feature losses on FPN levels, Runner.

Tiny data (helpers.make_tiny_coco): a few 64x64 PNGs with coloured rectangles + a COCO json.
Tiny RetinaNets (helpers.retinanet: ResNet-18 layout with 8/16 base channels, FPN 16/32 channels,
one stacked conv).
"""
from __future__ import annotations

import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import rtkd  # noqa: F401
from rtkd.distill.det_utils import anchor_imitation_masks, gt_box_masks
from helpers import ROOT, det_runner_config, det_sample, make_tiny_coco, retinanet

DET_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/distill/det/**/*.py'), recursive=True))


# ---------------------------------------------------------------------------------------------
# tiny data and models
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_coco(tmp_path_factory) -> str:
    return make_tiny_coco(str(tmp_path_factory.mktemp('coco')))


@pytest.fixture(scope='module')
def det_teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp('det_teacher')
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmdet'\nmodel = {retinanet(16, 32)!r}\n")
    with DefaultScope.overwrite_default_scope('mmdet'):
        t = MODELS.build(retinanet(16, 32))
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=t.state_dict()), ckpt)
    return cfg_path, ckpt


def det_distiller(teacher, **kw) -> dict:
    """FGFI on all FPN levels (built-in adapter 16 -> 32) + CWD on every level (connectors)."""
    taps = dict(s_fpn='student:neck', t_fpn='teacher:neck')
    taps.update({f's_p{i}': f'student:neck[{i}]' for i in range(5)})
    taps.update({f't_p{i}': f'teacher:neck[{i}]' for i in range(5)})
    losses = dict(
        loss_fgfi=dict(
            type='FGFILoss',
            psi=0.5,
            in_channels=16,
            out_channels=32,
            loss_weight=0.01,
            student='s_fpn',
            teacher='t_fpn'))
    losses.update({
        f'loss_cwd_p{i}':
        dict(type='ChannelWiseKD', tau=1.0, loss_weight=1.0, student=f's_p{i}', teacher=f't_p{i}')
        for i in range(5)
    })
    cfg = dict(
        type='Distiller',
        student=dict(model=retinanet(8, 16), scope='mmdet'),
        teacher=dict(config=teacher[0], checkpoint=teacher[1]),
        taps=taps,
        connectors={
            f's_p{i}': dict(type='ConvBNConnector', in_channels=16, out_channels=32)
            for i in range(5)
        },
        losses=losses)
    cfg.update(kw)
    return cfg


# ---------------------------------------------------------------------------------------------
# FGFI mask and loss
# ---------------------------------------------------------------------------------------------
def _gen(**kw):
    from mmdet.registry import TASK_UTILS
    return TASK_UTILS.build(dict(type='AnchorGenerator', _scope_='mmdet', **kw))


def test_fgfi_mask_hand_constructed():
    # stride 8, one 8x8 anchor per location centred on (8x, 8y): anchor(y, x) = [8x-4, 8y-4,
    # 8x+4, 8y+4]. GT [4, 4, 20, 12] overlaps anchors (1, 1) and (1, 2) with IoU 64/128 = 0.5
    # each and nothing else -> exactly those two cells.
    gen = _gen(strides=[8], ratios=[1.0], scales=[1], base_sizes=[8])
    boxes = [torch.tensor([[4., 4., 20., 12.]]), torch.zeros(0, 4)]
    (mask, ) = anchor_imitation_masks(gen, [(3, 4)], boxes, psi=0.5)
    expected = torch.zeros(2, 3, 4, dtype=torch.bool)
    expected[0, 1, 1] = expected[0, 1, 2] = True
    assert torch.equal(mask, expected)
    # a second, larger anchor (16x16): IoU 96/288 = 1/3 at (1,1) and (1,2); 48/336 = 1/7 at
    # (0,1), (0,2), (2,1), (2,2). psi=0.5 (thr 0.25) keeps the 1/3s (same cells); psi=0.25
    # (thr 0.125) also keeps the 1/7s.
    gen2 = _gen(strides=[8], ratios=[1.0], scales=[1, 2], base_sizes=[8])
    (m2, ) = anchor_imitation_masks(gen2, [(3, 4)], boxes[:1], psi=0.5)
    assert torch.equal(m2, expected[:1])
    (m3, ) = anchor_imitation_masks(gen2, [(3, 4)], boxes[:1], psi=0.25)
    exp3 = torch.zeros(1, 3, 4, dtype=torch.bool)
    exp3[0, :, 1:3] = True
    assert torch.equal(m3, exp3)


def test_fgfi_mask_max_over_levels_and_gt_box_fallback():
    # two levels (strides 8 and 16, anchors 8 and 16): a 16x16 box aligned to the coarse grid
    # matches a level-1 anchor with IoU 1, so M = 1 and level 0 (best IoU 0.25) gets nothing.
    gen = _gen(strides=[8, 16], ratios=[1.0], scales=[1], base_sizes=[8, 16])
    box = [torch.tensor([[8., 8., 24., 24.]])]
    m0, m1 = anchor_imitation_masks(gen, [(4, 4), (2, 2)], box, psi=0.5)
    assert not m0.any() and m1.sum() == 1 and m1[0, 1, 1]
    # single-level use: the max is that level's own -> level 0 gets its best anchors
    (m0_only, ) = anchor_imitation_masks(gen, [(4, 4)], box, psi=0.5, levels=[0])
    assert m0_only.any()
    # GT-box fallback with a point generator: points (x+0.5)*8 inside [4, 4, 20, 12]
    from mmdet.registry import TASK_UTILS
    pts = TASK_UTILS.build(
        dict(type='MlvlPointGenerator', _scope_='mmdet', strides=[8], offset=0.5))
    (g, ) = gt_box_masks(pts, [(3, 4)], [torch.tensor([[4., 4., 20., 12.]])])
    exp = torch.zeros(1, 3, 4, dtype=torch.bool)
    exp[0, 0:2, 0:3] = True  # points x in {4, 12, 20}, y in {4, 12} lie inside (inclusive)
    assert torch.equal(g, exp)


def test_fgfi_loss_value_zero_and_errors():
    loss = MODELS.build(
        dict(
            type='FGFILoss',
            prior_generator=dict(
                type='AnchorGenerator', strides=[8], ratios=[1.0], scales=[1], base_sizes=[8])))
    samples = [det_sample([[4, 4, 20, 12]]), det_sample([])]
    s = torch.randn(2, 3, 3, 4, requires_grad=True)
    t = torch.randn(2, 3, 3, 4)
    val = loss(s, t, data_samples=samples)
    expected = ((s - t)**2)[0, :, 1, 1:3].sum() / (2 * 2)
    assert torch.allclose(val, expected)
    assert loss(t.clone(), t, data_samples=samples).item() == 0.0
    assert loss(s, t, data_samples=[det_sample([]), det_sample([])]).item() == 0.0
    with pytest.raises(ValueError, match='ConvBNConnector'):
        loss(torch.randn(2, 5, 3, 4), t, data_samples=samples)
    with pytest.raises(ValueError, match=r'psi must be in \(0, 1\]'):
        MODELS.build(dict(type='FGFILoss', psi=0))
    # anchor-free student: 'auto' falls back to GT-box regions (rows 0-1, cols 0-2 here)
    free = MODELS.build(
        dict(
            type='FGFILoss',
            prior_generator=dict(type='MlvlPointGenerator', strides=[8], offset=0.5)))
    val = free(s, t, data_samples=samples)
    assert torch.allclose(val, ((s - t)**2)[0, :, 0:2, 0:3].sum() / (2 * 6))
    with pytest.raises(ValueError, match='mask="gt_box"'):
        MODELS.build(
            dict(
                type='FGFILoss',
                mask='anchor',
                prior_generator=dict(type='MlvlPointGenerator', strides=[8])))


def test_fgfi_adapter_starts_from_the_official_small_truncated_normal():
    torch.manual_seed(0)
    official = MODELS.build(dict(type='FGFILoss', in_channels=64, out_channels=64)).adapter.conv
    w = official.weight.detach()
    assert w.abs().max() <= 2e-4 and w.std().item() == pytest.approx(0.88e-4, rel=0.1)
    # the bias keeps PyTorch's default (the official truncated branch leaves it alone)
    assert official.bias.abs().max() > 1e-3
    pytorch = MODELS.build(
        dict(type='FGFILoss', in_channels=64, out_channels=64,
             adapter_init_std=None)).adapter.conv.weight
    assert pytorch.abs().max() > 1e-2
    with pytest.raises(ValueError, match='init_std must be a positive float'):
        MODELS.build(dict(type='Conv3x3ReLUConnector', in_channels=4, out_channels=4, init_std=0))


def test_distiller_det_zero_loss_and_gradients(det_teacher, tmp_path):
    # student == teacher (same config and weights), identity-initialised path: CWD/FGFI are 0
    same = dict(
        type='Distiller',
        student=dict(config=det_teacher[0]),
        teacher=dict(config=det_teacher[0], checkpoint=det_teacher[1]),
        taps=dict(s='student:neck', t='teacher:neck', s0='student:neck[0]', t0='teacher:neck[0]'),
        losses=dict(
            loss_fgfi=dict(type='FGFILoss', student='s', teacher='t'),
            loss_cwd=dict(type='ChannelWiseKD', tau=1.0, student='s0', teacher='t0')))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(same)
        model.student.load_state_dict(model.teacher.state_dict())
        model.train()
        data = dict(
            inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)] * 2,
            data_samples=[det_sample([[4, 4, 40, 30]]),
                          det_sample([[10, 20, 60, 60]])])
        model.student.eval()  # BN in eval on both sides -> identical features
        d = model.data_preprocessor(data, True)
        losses = model.loss(d['inputs'], d['data_samples'])
        assert losses['loss_fgfi'].item() == pytest.approx(0.0, abs=1e-10)
        assert losses['loss_cwd'].item() == pytest.approx(0.0, abs=1e-6)

        model = MODELS.build(det_distiller(det_teacher))
        model.train()
        d = model.data_preprocessor(data, True)
        losses = model.loss(d['inputs'], d['data_samples'])
        assert losses['loss_fgfi'].item() > 0
        sum(v for k, v in losses.items()
            if k.startswith('loss_fgfi') or k.startswith('loss_cwd')).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.losses['loss_fgfi'].adapter.conv.weight.grad is not None
    assert model.connectors['s_p0'][0].conv.weight.grad is not None
    assert model.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert model.student.bbox_head.retina_cls.weight.grad is None  # KD losses stop at the neck
    assert not any(n.startswith('teacher') for n in model.state_dict())


def test_cwd_on_head_logits_needs_predict_mode(det_teacher):
    """Per-level classification logits of RetinaHead via the head's output tuple."""
    taps = dict(s_cls='student:bbox_head[0][0]', t_cls='teacher:bbox_head[0][0]')
    cfg = dict(
        type='Distiller',
        student=dict(config=det_teacher[0]),
        teacher=dict(config=det_teacher[0], checkpoint=det_teacher[1]),
        taps=taps,
        teacher_mode='predict',
        losses=dict(
            loss_cwd_cls=dict(
                type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_cls', teacher='t_cls')))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg).train()
        data = dict(
            inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)],
            data_samples=[det_sample([[4, 4, 40, 30]])])
        d = model.data_preprocessor(data, True)
        losses = model.loss(d['inputs'], d['data_samples'])
    assert torch.isfinite(losses['loss_cwd_cls']) and losses['loss_cwd_cls'].item() >= 0


# ---------------------------------------------------------------------------------------------
# Runner: train 2 iterations, COCO mAP of the student, student-only checkpoint round trip
# ---------------------------------------------------------------------------------------------
def test_det_runner_train_test_and_student_export(tiny_coco, det_teacher, tmp_path):
    work = str(tmp_path / 'work')
    cfg = Config.fromfile(
        det_runner_config(str(tmp_path / 'kd.py'), tiny_coco, work, det_distiller(det_teacher)))
    cfg.custom_hooks = [dict(type='StudentCheckpointHook', interval=2)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = set(runner.message_hub.log_scalars)
    assert {
        'train/loss_fgfi', 'train/loss_cwd_p0', 'train/loss_cwd_p4', 'train/loss_cls',
        'train/loss_bbox'
    } <= scalars, scalars
    kd = runner.test()
    assert 'coco/bbox_mAP' in kd
    student_ckpt = osp.join(work, 'student_latest.pth')
    sd = torch.load(student_ckpt, map_location='cpu')['state_dict']
    assert not any(k.startswith(('losses', 'connectors', 'student.')) for k in sd)

    s_cfg = Config.fromfile(
        det_runner_config(
            str(tmp_path / 'student.py'), tiny_coco, str(tmp_path / 's'), retinanet(8, 16)))
    s_cfg.load_from = student_ckpt
    plain = Runner.from_cfg(s_cfg).test()
    assert plain['coco/bbox_mAP'] == pytest.approx(kd['coco/bbox_mAP'])


# ---------------------------------------------------------------------------------------------
# teacher-output cache for detectors: FPN tuple taps, mmdet pipelines
# ---------------------------------------------------------------------------------------------
def det_cache_config(tmp_path, tiny_coco, det_teacher, scale=(96, 96)) -> Config:
    """The runner recipe (FGFI on the FPN tuple + CWD per level) at a 1.5x pipeline resize."""
    cfg = Config.fromfile(
        det_runner_config(
            str(tmp_path / 'kd.py'), tiny_coco, str(tmp_path / 'work'), det_distiller(det_teacher)))
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline[2].type == 'Resize'
    pipeline[2].scale = scale
    return cfg


def test_det_geometric_cache_at_the_pipeline_resize_matches_the_live_teacher(
        tiny_coco, det_teacher, tmp_path):
    """``--scales pipeline``: every image cached at the training pipeline's own Resize (mmdet's
    fixed-scale pipelines), tuple taps stored level by level; the replay then equals the live
    teacher on augmented (flipped) batches to fp16 precision, and trains through the Runner
    without building the teacher. A fixed factor (1.0) has to resample and differs."""
    from rtkd.distill.cache_builder import build_geometric, check_cache
    cfg = det_cache_config(tmp_path, tiny_coco, det_teacher)
    out = str(tmp_path / 'cache')
    manifest = build_geometric(cfg, out, scales=['pipeline'], flip=True)
    assert manifest['scales'] == ['pipeline'] and manifest['status'] == 'complete'
    assert len(manifest['taps']['t_fpn']['parts']) == 5 and 'channels' in manifest['taps']['t_p0']
    res = check_cache(cfg, out, batches=2)
    assert set(res) == {f't_fpn#{i}' for i in range(5)} | {f't_p{i}' for i in range(5)}
    assert all(r['rel_l2'] < 2e-3 for r in res.values()), res
    fixed = str(tmp_path / 'cache-1.0')
    build_geometric(cfg, fixed, scales=[1.0], flip=True)
    assert check_cache(cfg, fixed, batches=2)['t_p0']['rel_l2'] > 20 * res['t_p0']['rel_l2']

    cfg.model.teacher.cache = dict(dir=out)
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    assert model.teacher_cache is not None and not model._teacher
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/loss_fgfi'].current())
    assert np.isfinite(scalars['train/loss_cwd_p4'].current())


def test_det_exact_cache_with_tuple_taps_matches_the_live_teacher(tiny_coco, det_teacher, tmp_path):
    from rtkd.distill.cache_builder import build_exact, check_cache
    cfg = det_cache_config(tmp_path, tiny_coco, det_teacher)
    out = str(tmp_path / 'exact')
    build_exact(cfg, out, iters=2)
    res = check_cache(cfg, out, batches=2)
    assert len(res) == 10 and all(r['rel_l2'] < 2e-3 for r in res.values()), res


def test_det_pipeline_scale_needs_a_deterministic_resize(tiny_coco, det_teacher, tmp_path):
    from rtkd.distill.cache_builder import build_geometric
    from rtkd.distill.teacher_cache import TeacherCacheError
    cfg = det_cache_config(tmp_path, tiny_coco, det_teacher)
    cfg.train_dataloader.dataset.pipeline[2] = dict(
        type='RandomResize', scale=(96, 96), ratio_range=(0.5, 2.0), keep_ratio=True)
    with pytest.raises(TeacherCacheError, match='must be deterministic.*RandomResize'):
        build_geometric(cfg, str(tmp_path / 'c'), scales=['pipeline'])
    with pytest.raises(TeacherCacheError, match='cannot be mixed'):
        build_geometric(cfg, str(tmp_path / 'c'), scales=['pipeline', 1.0])


# ---------------------------------------------------------------------------------------------
# shipped recipes build (teachers are OpenMMLab URLs: unreachable here, so build with
# checkpoint=None and check the URL separately)
# ---------------------------------------------------------------------------------------------
# Building an R101 teacher + R50 student takes ~5-10 s each on 2 shared cores: two recipes are
# built (one per detector family, incl. the FGFI prior-generator lookup), all are checked for
# registered loss types, defined taps and an OpenMMLab URL teacher.
BUILT = ('fgfi_rpn-fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco-1333x800.py',
         'fgfi_fpn_retinanet-r101_retinanet-r50_8xb2-1x_coco-1333x800.py')


@pytest.mark.parametrize('path', DET_CONFIGS, ids=[osp.basename(p) for p in DET_CONFIGS])
def test_det_recipes_build(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'Distiller' and cfg.default_scope == 'mmdet'
    url = cfg.model.teacher.checkpoint
    assert url.startswith('https://download.openmmlab.com/mmdetection/') and url.endswith('.pth')
    for name, loss in cfg.model.losses.items():
        assert MODELS.get(loss.type) is not None, loss.type
        assert loss.student in cfg.model.taps and loss.teacher in cfg.model.taps, name
    if osp.basename(path) not in BUILT:
        return
    model_cfg = cfg.model.copy()
    model_cfg.teacher = dict(cfg.model.teacher, checkpoint=None)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(model_cfg)
    fgfi = model.losses['loss_fgfi']
    head = model.student.rpn_head if hasattr(model.student, 'rpn_head') else \
        model.student.bbox_head
    assert fgfi._generator is head.prior_generator and fgfi._use_anchors
