"""Foundation: configs build, CamVid loads, the real Runner trains/tests/resumes, CPU DDP,
errors."""
from __future__ import annotations

import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import rtkd  # noqa: F401  (registers modules, safe checkpoint loading)
from helpers import CONFIG_DIR, DISTILLER_TYPES, ROOT, is_distill_recipe, tiny_data_options

BASELINE = osp.join(CONFIG_DIR, 'baselines', 'mmseg-fast-scnn_1xb8-2k_camvid-360x480.py')


def all_configs():
    found = sorted(glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True))
    return [c for c in found if f'{os.sep}_base_{os.sep}' not in c]


def tiny_cfg(path, data_root, work_dir, iters=2, **extra):
    cfg = Config.fromfile(path)
    opts = tiny_data_options(data_root)
    opts.update({
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': iters,
        'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': 1,
        'model.data_preprocessor.size': (32, 48),
        'train_dataloader.dataset.pipeline.2.scale': (64, 48),
        'train_dataloader.dataset.pipeline.3.crop_size': (32, 48),
        'val_dataloader.dataset.pipeline.1.scale': (64, 48),
        'test_dataloader.dataset.pipeline.1.scale': (64, 48),
    })
    opts.update(extra)
    cfg.merge_from_dict(opts)
    cfg.work_dir = str(work_dir)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    return cfg


@pytest.mark.parametrize(
    'path', [p for p in all_configs() if not is_distill_recipe(p)],
    ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_every_config_builds(path):
    """Every user-facing network config parses and its model builds in its own registry scope
    (the distillation recipes are built by tests/test_distill/test_distiller*.py)."""
    cfg = Config.fromfile(path)
    assert 'rtkd' in cfg.get('custom_imports', {}).get('imports', []), \
        f'{path} must import rtkd via custom_imports'
    assert str(cfg.model.get('type')) not in DISTILLER_TYPES, f'{path}: is_distill_recipe missed it'
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_camvid_dataset_tiny(tiny_camvid):
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(osp.join(CONFIG_DIR, '_base_', 'datasets', 'camvid.py'))
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.data_root = tiny_camvid
    with DefaultScope.overwrite_default_scope('mmseg'):
        ds = DATASETS.build(ds_cfg)
    assert len(ds) == 2
    assert len(ds.metainfo['classes']) == 11 and len(ds.metainfo['palette']) == 11
    sample = ds[0]
    label = sample['data_samples'].gt_sem_seg.data.numpy()
    assert 11 not in np.unique(label), 'void must be mapped to 255'
    assert 255 in np.unique(label)
    assert set(np.unique(label)) <= set(range(11)) | {255}


def test_camvid_missing_folder_is_clear(tmp_path):
    from rtkd.datasets import CamVidDataset
    missing = str(tmp_path / 'nope')
    with pytest.raises(FileNotFoundError, match='CamVid dataset folder not found.*nope'):
        CamVidDataset(data_root=missing, pipeline=[])
    os.makedirs(tmp_path / 'empty' / 'train')
    with pytest.raises(FileNotFoundError, match='trainannot'):
        CamVidDataset(data_root=str(tmp_path / 'empty'), pipeline=[])


def test_unknown_model_type_is_clear():
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmseg')
    with pytest.raises(KeyError, match='NoSuchNet is not in the mmseg::model registry'):
        MODELS.build(dict(type='NoSuchNet'))


def test_train_test_resume_cpu(tiny_camvid, tmp_path):
    """2 iterations through the real Runner, test from the checkpoint, then resume to 3."""
    from mmengine.runner import Runner
    cfg = tiny_cfg(BASELINE, tiny_camvid, tmp_path / 'run', iters=2)
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = tmp_path / 'run' / 'iter_2.pth'
    assert ckpt.is_file()
    # the checkpoint (incl. mmengine's message hub) loads with torch's *safe* loader
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert state['meta']['iter'] == 2 and 'message_hub' in state
    metrics = runner.val_loop.run()
    assert 'mIoU' in metrics and 0.0 <= metrics['mIoU'] <= 100.0

    cfg_t = tiny_cfg(BASELINE, tiny_camvid, tmp_path / 'test')
    cfg_t.load_from = str(ckpt)
    metrics = Runner.from_cfg(cfg_t).test()
    assert 'mIoU' in metrics

    cfg_r = tiny_cfg(BASELINE, tiny_camvid, tmp_path / 'run', iters=3)
    cfg_r.resume = True
    runner_r = Runner.from_cfg(cfg_r)
    runner_r.train()
    assert runner_r.iter == 3
    assert (tmp_path / 'run' / 'iter_3.pth').is_file()


def test_tools_test_missing_checkpoint_is_clear(tmp_path):
    out = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), BASELINE,
        str(tmp_path / 'missing.pth')
    ],
                         capture_output=True,
                         text=True)
    assert out.returncode != 0
    assert 'checkpoint file not found' in out.stderr and 'missing.pth' in out.stderr


def test_cpu_distributed_two_processes(tiny_camvid, tmp_path):
    """torchrun with 2 processes on CPU (gloo) through tools/train.py."""
    torchrun = shutil.which(
        'torchrun', path=osp.dirname(sys.executable)) or shutil.which('torchrun')
    assert torchrun, 'torchrun must be installed beside python'
    opts = tiny_data_options(tiny_camvid, batch_size=2)
    opts.update({
        'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1,
        'model.data_preprocessor.size': '(32,48)',
        'train_dataloader.dataset.pipeline.2.scale': '(64,48)',
        'train_dataloader.dataset.pipeline.3.crop_size': '(32,48)',
        'val_dataloader.dataset.pipeline.1.scale': '(64,48)'
    })
    cmd = [
        torchrun, '--nproc_per_node=2', '--master_port=29533',
        osp.join(ROOT, 'tools', 'train.py'), BASELINE, '--launcher', 'pytorch', '--work-dir',
        str(tmp_path / 'ddp'), '--cfg-options'
    ]
    cmd += [f'{k}={v}' for k, v in opts.items()]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / 'ddp' / 'iter_2.pth').is_file()
    logs = glob.glob(str(tmp_path / 'ddp' / '*' / '*.log'))
    text = open(logs[0]).read()
    assert 'world_size: 2' in text or 'Distributed training: True' in text


def test_project_template_builds():
    """The projects/ template config imports its own module and builds."""
    sys.path.insert(0, ROOT)
    try:
        cfg = Config.fromfile(
            osp.join(ROOT, 'projects', 'example_project', 'configs',
                     'example-fcn-dsconv_2k_camvid-360x480.py'))
        from mmengine.registry import MODELS, init_default_scope
        init_default_scope('mmseg')
        model = MODELS.build(cfg.model)
        assert type(model.decode_head).__name__ == 'DSConvFCNHead'
    finally:
        sys.path.remove(ROOT)


def test_weighted_cross_entropy_with_ignored_pixels():
    """mmseg's class-weighted CE (patched by rtkd.compat) equals torch's weighted mean and
    tolerates ignored (255) pixels."""
    from mmseg.models.losses import CrossEntropyLoss
    torch.manual_seed(0)
    w = [1.0, 2.0, 0.5]
    logits = torch.randn(2, 3, 4, 5)
    label = torch.randint(0, 3, (2, 4, 5))
    label[0, 0, :] = 255
    loss = CrossEntropyLoss(class_weight=w, loss_weight=1.0)(logits, label, ignore_index=255)
    ref = torch.nn.functional.cross_entropy(logits, label, weight=torch.tensor(w), ignore_index=255)
    assert torch.allclose(loss, ref, atol=1e-6)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from rtkd.utils import atomic_write_bytes
    path = str(tmp_path / 'sub' / 'f.bin')
    atomic_write_bytes(path, lambda f: f.write(b'old'))  # creates the folder
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600

    def fail_midway(f):
        f.write(b'new, half')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, fail_midway)
    assert open(path, 'rb').read() == b'old'
    assert os.listdir(tmp_path / 'sub') == ['f.bin']  # no temporary file left behind
