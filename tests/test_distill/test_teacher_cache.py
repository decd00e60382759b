"""Teacher-output cache: geometric replay, exact mode, manifest checks, resume, Runner, DDP.

Tiny CamVid (tests/conftest.py). The geometric-replay test uses a teacher that commutes with
crop and flip (a 1x1 convolution at full resolution), so the replayed cache must equal the live
teacher exactly; the exact mode is compared with a live tiny mmseg teacher through the Runner.
"""
from __future__ import annotations

import copy
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import rtkd  # noqa: F401
from rtkd.distill import cache_builder as cb
from rtkd.distill.teacher_cache import (TeacherCacheError, check_pipeline_replayable,
                                        coords_to_grid, decode_tap, encode_tap, read_manifest,
                                        sample_window)
from rtkd.visualization.run_logs import load_run
from helpers import (AUG_PIPE, ROOT, build_distiller, pixel_model, saved_teacher, seg_model,
                     seg_recipe, write_recipe)

GEO_PIPE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale_factor=0.5, keep_ratio=True),
    dict(type='RecordedRandomCrop', crop_size=(16, 24)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=rtkd.datasets.GEOMETRY_META_KEYS)
]
PIX_TAPS = dict(s_out='student:head', t_out='teacher:head')
MSE = dict(loss_mse=dict(type='_TestMSE', student='s_out', teacher='t_out'))


@pytest.fixture(scope='module')
def pixel_teacher(tmp_path_factory):
    return saved_teacher(str(tmp_path_factory.mktemp('pix_teacher')), pixel_model(7))


def pixel_recipe(tmp_path, data_root: str, teacher: dict) -> tuple:
    """The 1x1-conv teacher recipe on GEO_PIPE: (its config, the cache folder to build)."""
    recipe = write_recipe(
        str(tmp_path / 'r.py'), data_root, str(tmp_path / 'w'), teacher, GEO_PIPE, PIX_TAPS, MSE)
    return Config.fromfile(recipe), str(tmp_path / 'cache')


def _batches(cfg, n):
    with DefaultScope.overwrite_default_scope('mmseg'):
        loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=3)
    it = iter(loader)
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize('flip_cache', [False, True])
def test_geometric_replay_equals_equivariant_live_teacher(tmp_path, tiny_camvid, pixel_teacher,
                                                          flip_cache):
    """Resize x0.5 + random crop + random flip: replayed targets == the live 1x1-conv teacher."""
    cfg, out = pixel_recipe(tmp_path, tiny_camvid, pixel_teacher)
    m = cb.build_geometric(cfg, out, scales=[0.5], flip=flip_cache, batch_size=3)
    assert m['status'] == 'complete' and m['done'] == 4 * (2 if flip_cache else 1)
    live = build_distiller(cfg)
    cfg_c = copy.deepcopy(cfg)
    cfg_c.model.teacher['cache'] = dict(dir=out)
    cached = build_distiller(cfg_c)
    assert cached._teacher == []  # the teacher is not built
    flips = 0
    for batch in _batches(cfg, 4):
        data = live.data_preprocessor(batch, True)
        inputs, samples = data['inputs'], data['data_samples']
        flips += sum(bool(s.metainfo['flip']) for s in samples)
        want = live.teacher_targets(inputs, samples, 0)['t_out']
        got = cached.teacher_targets(inputs, samples, 0)['t_out']
        # the batch is padded to 24x32 but crops are 16x24: compare the crop region only
        assert torch.allclose(got[..., :16, :24], want[..., :16, :24], atol=2e-2, rtol=1e-2)
        assert not torch.allclose(got[..., :16, :24], want[..., :16, :24].flip(-1), atol=2e-2)
    assert flips > 0  # the flip branch was exercised


def test_geometric_check_tool_and_nearest_scale(tmp_path, tiny_camvid, pixel_teacher):
    """--check reports ~100% agreement for an equivariant teacher; scales are picked by log."""
    cfg, out = pixel_recipe(tmp_path, tiny_camvid, pixel_teacher)
    cb.build_geometric(cfg, out, scales=[0.25, 0.5, 1.0], batch_size=2)
    res = cb.check_cache(cfg, out, batches=2)
    assert res['t_out']['argmax_agreement'] > 99.0 and res['t_out']['batches'] == 2
    from rtkd.distill.teacher_cache import TeacherCache
    cache = TeacherCache(out, {})
    assert cache._pick_scale(0.55) == 0.5 and cache._pick_scale(0.8) == 1.0


def test_topk_encoding_keeps_topk_probabilities():
    torch.manual_seed(0)
    x = torch.randn(7, 3, 4) * 3
    enc = encode_tap(x, topk=2)
    assert set(enc) == {'.val', '.idx', '.rest'}
    dec = decode_tap({'t' + k: v for k, v in enc.items()}, 't', 7)
    p, q = x.softmax(0), dec.softmax(0)
    top = x.topk(2, dim=0).indices
    assert torch.allclose(p.gather(0, top), q.gather(0, top), atol=2e-3)
    assert torch.equal(dec.argmax(0), x.argmax(0))
    dense = decode_tap({'t': encode_tap(x, None)['']}, 't', 7)
    assert torch.allclose(dense, x, atol=1e-2)


@pytest.mark.parametrize('lo,hi', [(-3.0, 12.0), (2.2, 5.9), (-4.0, -1.5), (9.5, 14.0), (3.0, 3.0)])
def test_windowed_replay_equals_whole_map(lo, hi):
    # the reader decodes only the window a sample's grid covers; with the border clamp that
    # must give the whole map's bilinear values, also for coordinates beyond either edge
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    src = torch.randn(1, 3, 8, 11, generator=g)
    uy = torch.linspace(lo * 0.7, hi * 0.7, 5, dtype=torch.float64)
    ux = torch.linspace(lo, hi, 6, dtype=torch.float64)
    whole = F.grid_sample(
        src, coords_to_grid(uy, ux, (8, 11)), padding_mode='border', align_corners=False)
    (y0, y1), (x0, x1) = sample_window(uy, 8), sample_window(ux, 11)
    assert 0 <= y0 < y1 <= 8 and 0 <= x0 < x1 <= 11
    win = F.grid_sample(
        src[..., y0:y1, x0:x1],
        coords_to_grid(uy - y0, ux - x0, (y1 - y0, x1 - x0)),
        padding_mode='border',
        align_corners=False)
    torch.testing.assert_close(win, whole, rtol=0, atol=1e-5)
    if (lo, hi) == (2.2, 5.9):  # an interior grid reads a window, not the whole map
        assert (x0, x1) == (2, 7)


def test_pipeline_checks():
    with pytest.raises(TeacherCacheError, match='RecordedRandomCrop'):
        check_pipeline_replayable([dict(type='RandomCrop', crop_size=(8, 8))])
    with pytest.raises(TeacherCacheError, match='RandomRotate'):
        check_pipeline_replayable([dict(type='RandomRotate', prob=1, degree=20)])
    with pytest.raises(TeacherCacheError, match='resize -> crop -> flip'):
        check_pipeline_replayable([dict(type='RandomFlip'), dict(type='Resize')])
    with pytest.raises(TeacherCacheError, match='meta_keys'):
        check_pipeline_replayable([dict(type='RecordedRandomCrop'), dict(type='PackSegInputs')])
    check_pipeline_replayable(GEO_PIPE)


def test_unrecorded_crop_is_refused_per_sample(tmp_path, tiny_camvid, pixel_teacher):
    cfg, out = pixel_recipe(tmp_path, tiny_camvid, pixel_teacher)
    cb.build_geometric(cfg, out, scales=[0.5])
    cfg.model.teacher['cache'] = dict(dir=out)
    cached = build_distiller(cfg)
    bad = copy.deepcopy(cfg)
    bad.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='Resize', scale_factor=0.5, keep_ratio=True),
        dict(type='RandomCrop', crop_size=(16, 24)),
        dict(type='PackSegInputs')
    ]
    data = cached.data_preprocessor(_batches(bad, 1)[0], True)
    with pytest.raises(TeacherCacheError, match='crop box was not recorded'):
        cached.teacher_targets(data['inputs'], data['data_samples'], 0)


def test_manifest_mismatch_and_missing_entries(tmp_path, tiny_camvid, pixel_teacher):
    cfg, out = pixel_recipe(tmp_path, tiny_camvid, pixel_teacher)
    cb.build_geometric(cfg, out, scales=[0.5])
    # another checkpoint
    other = str(tmp_path / 'other.pth')
    sd = torch.load(pixel_teacher['checkpoint'])
    sd['state_dict']['head.bias'] += 1
    torch.save(sd, other)
    c2 = copy.deepcopy(cfg)
    c2.model.teacher = dict(pixel_teacher, checkpoint=other, cache=dict(dir=out))
    with pytest.raises(TeacherCacheError, match='teacher checkpoint sha256'):
        build_distiller(c2)
    # another teacher config
    c3 = copy.deepcopy(cfg)
    c3.model.teacher = dict(
        model=dict(pixel_model(7), channels=6), checkpoint=None, cache=dict(dir=out))
    with pytest.raises(TeacherCacheError, match='teacher config'):
        build_distiller(c3)
    # another tap
    c4 = copy.deepcopy(cfg)
    c4.model.teacher['cache'] = dict(dir=out)
    c4.model.taps = dict(s_out='student:head', t_out='teacher:head#in')
    with pytest.raises(TeacherCacheError, match="'teacher:head#in' in the recipe"):
        build_distiller(c4)
    # building into the folder with another recipe is refused, --overwrite replaces
    c5 = copy.deepcopy(cfg)
    c5.model.teacher = dict(pixel_teacher, checkpoint=other)
    with pytest.raises(TeacherCacheError, match='teacher checkpoint'):
        cb.build_geometric(c5, out, scales=[0.5])
    with pytest.raises(TeacherCacheError, match='another scales'):
        cb.build_geometric(cfg, out, scales=[0.5, 1.0])
    # a missing entry names the sample
    cfg.model.teacher['cache'] = dict(dir=out)
    cached = build_distiller(cfg)
    victim = sorted(glob.glob(osp.join(out, 'entries', '*.npz')))[0]
    os.remove(victim)
    name = osp.basename(victim).split('@')[0]
    with pytest.raises(TeacherCacheError, match=name):
        for batch in _batches(cfg, 4):
            data = cached.data_preprocessor(batch, True)
            cached.teacher_targets(data['inputs'], data['data_samples'], 0)


def test_interrupted_build_resumes_without_recomputing(tmp_path, tiny_camvid, pixel_teacher):
    cfg, out = pixel_recipe(tmp_path, tiny_camvid, pixel_teacher)
    cb.build_geometric(cfg, out, scales=[0.5])
    entries = sorted(glob.glob(osp.join(out, 'entries', '*.npz')))
    keep = {p: os.stat(p).st_mtime_ns for p in entries[1:]}
    os.remove(entries[0])
    man = read_manifest(out)
    man.update(status='building', done=3)
    with open(osp.join(out, 'manifest.json'), 'w') as f:
        json.dump(man, f)
    c2 = copy.deepcopy(cfg)
    c2.model.teacher['cache'] = dict(dir=out)
    with pytest.raises(TeacherCacheError, match='incomplete'):
        build_distiller(c2)
    m = cb.build_geometric(cfg, out, scales=[0.5])
    assert m['status'] == 'complete' and osp.isfile(entries[0])
    assert {p: os.stat(p).st_mtime_ns for p in entries[1:]} == keep  # not recomputed
    assert not glob.glob(osp.join(out, 'entries', '.tmp-*'))


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


def _train(recipe: str, work_dir: str, resume: bool = False, cfg_options=None):
    cfg = Config.fromfile(recipe)
    cfg.work_dir = work_dir
    cfg.resume = resume
    # a fresh visualizer and message hub (mmengine reuses both by name, and the name is the start
    # second: two runs started within one second would share their loss history)
    cfg.visualizer.name = f'vis_{uuid.uuid4().hex}'
    cfg.experiment_name = f'run_{uuid.uuid4().hex}'
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _scalars(work_dir: str, key: str) -> list:
    """One training scalar per iteration, from every launch of a (resumed) run."""
    return load_run(work_dir).series(key)[1]


@pytest.fixture(scope='module')
def seg_teacher(tmp_path_factory):
    return saved_teacher(str(tmp_path_factory.mktemp('seg_teacher')), seg_model(8))


def test_exact_cache_equals_live_teacher_through_runner(tmp_path, tiny_camvid, seg_teacher):
    """Same seed: cached training == live training (losses, weights); other seed: refused."""
    recipe = seg_recipe(tmp_path, tiny_camvid, seg_teacher, max_iters=4)
    cfg = Config.fromfile(recipe)
    out = str(tmp_path / 'exact')
    m = cb.build_exact(cfg, out, iters=4)
    assert m['status'] == 'complete' and m['mode'] == 'exact'
    res = cb.check_cache(cfg, out, batches=3)
    # fp16 storage: argmax may flip where a random teacher's top logits are nearly tied
    assert res['t_logits']['argmax_agreement'] > 98.0
    assert res['t_logits']['rel_l2'] < 2e-3
    assert -1e-7 < res['t_logits']['mean_kl'] < 1e-4  # KL(live || cached) of the class softmax

    # float32 storage: training from the cache is the live run, to float rounding
    out32 = str(tmp_path / 'exact32')
    cb.build_exact(cfg, out32, iters=4, dtype='float32')
    assert cb.check_cache(cfg, out32, batches=2)['t_logits']['max_abs'] == 0.0
    live = _train(recipe, str(tmp_path / 'live'))
    cached = _train(
        recipe, str(tmp_path / 'cached'), cfg_options={'model.teacher.cache': dict(dir=out32)})
    assert _unwrap(cached.model)._teacher == []  # the teacher was not built
    a, b = (_scalars(str(tmp_path / d), 'loss_cwd') for d in ('live', 'cached'))
    assert len(a) == 4 and np.allclose(a, b, rtol=1e-5, atol=1e-9), (a, b)
    sa, sb = (_unwrap(r.model).student.state_dict() for r in (live, cached))
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), rtol=1e-5, atol=1e-7), k

    # another seed: the stream differs from the cached one
    with pytest.raises(TeacherCacheError, match='training stream differs'):
        _train(
            recipe,
            str(tmp_path / 'seed1'),
            cfg_options={
                'model.teacher.cache': dict(dir=out),
                'randomness.seed': 1
            })
    # longer than cached
    with pytest.raises(TeacherCacheError, match='the run has max_iters=6'):
        _train(
            recipe,
            str(tmp_path / 'long'),
            cfg_options={
                'model.teacher.cache': dict(dir=out),
                'train_cfg.max_iters': 6
            })


def test_exact_cache_resume(tmp_path, tiny_camvid, seg_teacher):
    """Stop at 2, --resume to 4 with the exact cache: the same losses as 4 uninterrupted."""
    recipe = seg_recipe(tmp_path, tiny_camvid, seg_teacher, max_iters=4)
    out = str(tmp_path / 'exact')
    cb.build_exact(Config.fromfile(recipe), out, iters=4, dtype='float32')
    opts = {'model.teacher.cache': dict(dir=out)}
    _train(recipe, str(tmp_path / 'full'), cfg_options=opts)
    _train(recipe, str(tmp_path / 'part'), cfg_options=dict(opts, **{'train_cfg.max_iters': 2}))
    _train(recipe, str(tmp_path / 'part'), resume=True, cfg_options=opts)
    a, b = (_scalars(str(tmp_path / d), 'loss_cwd') for d in ('full', 'part'))
    assert len(b) == 4 and np.allclose(a, b, rtol=1e-5, atol=1e-9), (a, b)


def test_geometric_cache_trains_through_runner_and_resumes(tmp_path, tiny_camvid, seg_teacher):
    recipe = seg_recipe(tmp_path, tiny_camvid, seg_teacher, max_iters=4)
    out = str(tmp_path / 'geo')
    cb.build_geometric(Config.fromfile(recipe), out, scales=[0.5, 1.0, 1.5], flip=True, topk=4)
    opts = {'model.teacher.cache': dict(dir=out), 'train_cfg.max_iters': 2}
    _train(recipe, str(tmp_path / 'g'), cfg_options=opts)
    runner = _train(
        recipe,
        str(tmp_path / 'g'),
        resume=True,
        cfg_options=dict(opts, **{'train_cfg.max_iters': 4}))
    assert runner.iter == 4
    vals = _scalars(str(tmp_path / 'g'), 'loss_cwd')
    assert len(vals) == 4 and all(np.isfinite(vals)) and max(vals) > 0


def test_cache_tool_ddp_build_and_train(tmp_path, tiny_camvid, seg_teacher):
    """torchrun 2 processes: each rank writes its part; a 2-process run trains from the cache."""
    recipe = seg_recipe(tmp_path, tiny_camvid, seg_teacher, max_iters=2, batch=1)
    out = str(tmp_path / 'geo')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    base = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port',
        str(29500 + os.getpid() % 1000)
    ]
    r = subprocess.run(
        base + [
            osp.join(ROOT, 'tools/distill/cache_teacher.py'), recipe, '--out', out, '--scales',
            '0.5', '1.0', '--launcher', 'pytorch'
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = read_manifest(out)
    assert m['status'] == 'complete' and m['done'] == 8
    r = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/distill/cache_teacher.py'), '--check', recipe, out, '--batches', '2'
    ],
                       cwd=ROOT,
                       env=env,
                       capture_output=True,
                       text=True,
                       timeout=600)
    assert r.returncode == 0 and 'argmax agreement' in r.stdout, r.stderr[-3000:]
    base[-1] = str(int(base[-1]) + 1)
    r = subprocess.run(
        base + [
            osp.join(ROOT, 'tools/train.py'), recipe, '--launcher', 'pytorch', '--work-dir',
            str(tmp_path / 'ddp'), '--cfg-options', f'model.teacher.cache.dir={out}'
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert glob.glob(str(tmp_path / 'ddp' / 'iter_2.pth'))


def test_ofd_with_cache_reads_margin_then_drops_teacher(tmp_path, tiny_camvid, seg_teacher):
    """OFD's margin comes from a teacher BN: built for setup only, then released."""
    dp = dict(seg_model(4)['data_preprocessor'], size=(32, 48))
    student = dict(model=dict(seg_model(4), data_preprocessor=dp), scope='mmseg')
    taps = dict(s_feat='student:decode_head.convs.0.bn', t_feat='teacher:decode_head.convs.0.bn')
    losses = dict(
        loss_ofd=dict(
            type='OFDLoss',
            teacher_bn='decode_head.convs.0.bn',
            loss_weight=1e-3,
            student='s_feat',
            teacher='t_feat'))
    extra = "model.update(connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=8, " \
            "out_channels=16)))"
    recipe = write_recipe(
        str(tmp_path / 'ofd.py'),
        tiny_camvid,
        str(tmp_path / 'w'),
        seg_teacher,
        AUG_PIPE,
        taps,
        losses,
        student=student,
        extra=extra)
    cfg = Config.fromfile(recipe)
    out = str(tmp_path / 'cache')
    cb.build_geometric(cfg, out, scales=[1.0])
    live = build_distiller(cfg)
    cfg.model.teacher['cache'] = dict(dir=out)
    cached = build_distiller(cfg)
    assert cached._teacher == [] and cached.teacher_cache.mode == 'geometric'
    assert torch.equal(cached.losses.loss_ofd.margin, live.losses.loss_ofd.margin)
    cached.load_state_dict(live.state_dict())
    data = cached.data_preprocessor(_batches(cfg, 1)[0], True)
    losses_c = cached.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(losses_c['loss_ofd']) and float(losses_c['loss_ofd']) > 0
    with pytest.raises(RuntimeError, match='teacher is not built'):
        cached.resolve_module('teacher:decode_head')
