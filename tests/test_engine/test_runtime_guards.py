"""Runs that used to end with exit code 0 and a meaningless number now stop (issue 14, items 3, 5).

* a diverged plain-network run (lr=1e10) stops with the loss name and iteration, before that
  iteration's checkpoint, and ``tools/train.py`` exits non-zero;
* ``num_workers=0`` runs with the CamVid base's ``persistent_workers=True``;
* setuptools' ``pkg_resources is deprecated`` warning is not printed.

Tiny CamVid (tests/helpers/data.py), 32x48 crops, the tiny mmseg model of tests/helpers/models.py,
the real mmengine Runner.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

import rtkd  # noqa: F401
from helpers import ROOT, seg_model, write_config

#: lr=1e10 from the first to the last iteration (no schedule): the loss is NaN at iteration 3.
NAN_OPTIONS = {
    'optim_wrapper.optimizer.lr': 1e10,
    'param_scheduler': None,
    'train_cfg.val_interval': 100,
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.checkpoint.max_keep_ckpts': 10
}


def diverging_config(tmp_path, tiny_camvid) -> tuple:
    """A plain segmentor config (the project's runtime base) trained with lr=1e10."""
    work = str(tmp_path / 'work')
    cfg_file = write_config(
        str(tmp_path / 'diverge.py'),
        tiny_camvid,
        work,
        seg_model(4),
        max_iters=6,
        extra="default_scope = 'mmseg'\n")
    return cfg_file, work


def test_non_finite_loss_stops_before_its_checkpoint(tiny_camvid, tmp_path):
    cfg_file, work = diverging_config(tmp_path, tiny_camvid)
    cfg = Config.fromfile(cfg_file)
    cfg.merge_from_dict(NAN_OPTIONS)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            FloatingPointError,
            match=r'non-finite loss at iteration \d+: .*'
            r'decode\.loss_ce=(nan|inf|-inf).*lower the learning rate') as info:
        runner.train()
    bad_iter = int(str(info.value).split('iteration ')[1].split(':')[0])
    assert bad_iter == runner.iter + 1  # the iteration that diverged, as the log counts
    written = sorted(int(osp.basename(p)[5:-4]) for p in glob.glob(osp.join(work, 'iter_*.pth')))
    assert written == list(range(1, bad_iter)), (written, bad_iter)  # none for the NaN step
    assert 'Training finished' not in open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()


def test_train_script_exits_non_zero_on_divergence(tiny_camvid, tmp_path):
    cfg_file, work = diverging_config(tmp_path, tiny_camvid)
    opts = [f'{k}={v}' for k, v in NAN_OPTIONS.items()]
    proc = subprocess.run(
        [sys.executable,
         osp.join(ROOT, 'tools/train.py'), cfg_file, '--cfg-options', *opts],
        cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert 'FloatingPointError: non-finite loss at iteration' in proc.stderr, proc.stderr[-3000:]
    assert 'decode.loss_ce=' in proc.stderr
    assert 'pkg_resources is deprecated' not in proc.stderr + proc.stdout


def test_num_workers_zero_with_persistent_workers(tiny_camvid, tmp_path):
    work = str(tmp_path / 'work')
    cfg = Config.fromfile(
        write_config(
            str(tmp_path / 'nw0.py'),
            tiny_camvid,
            work,
            seg_model(4),
            max_iters=1,
            extra="default_scope = 'mmseg'\n"))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers = 0
        cfg[key].persistent_workers = True  # what configs/_base_/datasets/camvid.py sets
    cfg.train_cfg.val_interval = 1
    runner = Runner.from_cfg(cfg)
    runner.train()  # used to raise: persistent_workers option needs num_workers > 0
    assert runner.iter == 1 and 'mIoU' in runner.test()


def test_no_pkg_resources_warning_on_config_load():
    code = ('import rtkd\n'
            'from mmengine.config import Config\n'
            f"Config.fromfile({osp.join(ROOT, 'configs/_base_/default_runtime.py')!r})\n"
            f"Config.fromfile({osp.join(ROOT, 'configs/_base_/vis_draw.py')!r})\n"
            'import warnings\n'
            "warnings.warn('other UserWarnings still show')\n")
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'pkg_resources is deprecated' not in proc.stderr, proc.stderr
    assert 'other UserWarnings still show' in proc.stderr  # the filter is targeted


def test_resume_when_load_from_holds_initial_weights(tiny_camvid, tmp_path):
    """A continuation config (``load_from`` = weights of an earlier training) can be resumed:
    mmengine alone resumes from ``load_from`` itself and stops with KeyError 'message_hub'."""
    import torch
    first = str(tmp_path / 'first')
    cfg = Config.fromfile(
        write_config(
            str(tmp_path / 'first.py'),
            tiny_camvid,
            first,
            seg_model(4),
            extra="default_scope = 'mmseg'\n"))
    cfg.experiment_name = 'resume_init_first'
    Runner.from_cfg(cfg).train()
    trained = torch.load(osp.join(first, 'iter_2.pth'), map_location='cpu', weights_only=True)
    init = str(tmp_path / 'init.pth')  # what a released / continued model file holds
    torch.save(dict(state_dict=trained['state_dict'], meta=dict()), init)

    def run(max_iters, name, load_from=init, work='cont'):
        cfg = Config.fromfile(
            write_config(
                str(tmp_path / f'{name}.py'),
                tiny_camvid,
                str(tmp_path / work),
                seg_model(4),
                max_iters=max_iters,
                extra=f"default_scope = 'mmseg'\nload_from = {load_from!r}\n"
                'resume = True\n'))
        cfg.experiment_name = name
        runner = Runner.from_cfg(cfg)
        runner.train()
        return runner, open(glob.glob(osp.join(runner.log_dir, '*.log'))[0]).read()

    runner, log = run(2, 'resume_init_a')  # nothing to resume yet: starts from the weights
    assert runner.iter == 2 and 'starting from the weights in load_from' in log
    runner, log = run(4, 'resume_init_b')  # interrupted at 2, resumed: continues at 3
    assert 'resumed epoch: 0, iter: 2' in log and runner.iter == 4, log[-2000:]
    assert "holds weights only" in log
    # a training checkpoint as load_from keeps mmengine's meaning: resume from that file
    runner, log = run(4, 'resume_init_c', load_from=osp.join(first, 'iter_2.pth'), work='own')
    assert 'resumed epoch: 0, iter: 2' in log and runner.iter == 4, log[-2000:]
    assert 'holds weights only' not in log and 'starting from the weights' not in log
    # the initial weights gone (other machine, teacher folder moved): the run's own state resumes
    runner, log = run(6, 'resume_init_d', load_from=str(tmp_path / 'gone.pth'))
    assert 'resumed epoch: 0, iter: 4' in log and runner.iter == 6, log[-2000:]
    assert 'does not exist here' in log
