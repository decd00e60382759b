"""Distiller through the real mmengine Runner: train/val/test, resume, student export, DDP, recipes.

Tiny CamVid (tests/helpers/data.py), 32x48 crops, 2-3 iterations, tiny mmseg models.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import re
import runpy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import rtkd  # noqa: F401
from helpers import ROOT, needs_torchrun, run_torchrun, seg_model, write_config


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp('teacher_r')
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmseg'\nmodel = {seg_model(8)!r}\n")
    with DefaultScope.overwrite_default_scope('mmseg'):
        t = MODELS.build(seg_model(8))
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=t.state_dict()), ckpt)
    return cfg_path, ckpt


def distiller(teacher, losses=None, **kw) -> dict:
    return dict(
        type='Distiller',
        student=dict(model=seg_model(4, aux=True), scope='mmseg'),
        teacher=dict(config=teacher[0], checkpoint=teacher[1]),
        taps=dict(
            s_logits='student:decode_head.conv_seg',
            t_logits='teacher:decode_head.conv_seg',
            s_feat='student:backbone[3]',
            t_feat='teacher:backbone[3]'),
        losses=losses or dict(
            loss_cwd=dict(
                type='ChannelWiseKD',
                tau=4.0,
                loss_weight=3.0,
                student='s_logits',
                teacher='t_logits')),
        **kw)


HOOKS = ("custom_hooks = [dict(type='StudentCheckpointHook', interval=2)]\n"
         "model_wrapper_cfg = dict(type='DistillerDataParallel')\n")


def test_train_test_resume_and_student_roundtrip(tiny_camvid, teacher, tmp_path):
    work = str(tmp_path / 'work')
    cfg_file = write_config(
        str(tmp_path / 'kd.py'), tiny_camvid, work, distiller(teacher), extra=HOOKS)
    runner = Runner.from_cfg(Config.fromfile(cfg_file))
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert {'train/loss_cwd', 'train/decode.loss_ce', 'train/aux.loss_ce'} <= set(scalars)
    for f in ('iter_2.pth', 'student_iter_2.pth', 'student_latest.pth'):
        assert osp.isfile(osp.join(work, f)), f
    ckpt = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu')
    keys = list(ckpt['state_dict'])
    assert keys and all(
        k.split('.')[0] in ('student', 'losses', 'connectors', 'distill_iter') for k in keys)
    assert int(ckpt['state_dict']['distill_iter']) == 2
    kd_metrics = runner.test()
    assert 'mIoU' in kd_metrics

    # student-only checkpoint: tool output == hook output, loads into the plain student config
    out = str(tmp_path / 'student.pth')
    tool = runpy.run_path(osp.join(ROOT, 'tools/model_converters/extract_student.py'))
    tool['main']([osp.join(work, 'iter_2.pth'), out])  # in-process: no second 20 s import
    a = torch.load(out, map_location='cpu')['state_dict']
    b = torch.load(osp.join(work, 'student_latest.pth'), map_location='cpu')['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    s_file = write_config(
        str(tmp_path / 'student_cfg.py'),
        tiny_camvid,
        str(tmp_path / 's'),
        seg_model(4, aux=True),
        extra="default_scope = 'mmseg'\n")
    s_cfg = Config.fromfile(s_file)
    s_cfg.load_from = out
    s_metrics = Runner.from_cfg(s_cfg).test()
    assert s_metrics['mIoU'] == pytest.approx(kd_metrics['mIoU'])

    # resume: continues iteration count and the distiller's schedule counter
    cfg = Config.fromfile(
        write_config(
            str(tmp_path / 'kd3.py'),
            tiny_camvid,
            work,
            distiller(teacher),
            max_iters=3,
            extra=HOOKS))
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3 and int(runner.model.distill_iter) == 3


SKD = dict(
    loss_pi=dict(
        type='PixelWiseKD', tau=1.0, loss_weight=10.0, student='s_logits', teacher='t_logits'),
    loss_pa=dict(type='PairWiseKD', scale=0.5, loss_weight=1.0, student='s_feat', teacher='t_feat'),
    loss_hkd=dict(
        type='HolisticKD',
        num_classes=11,
        num_convs=2,
        base_channels=8,
        loss_weight=0.1,
        student='s_logits',
        teacher='t_logits'))
ADV_OPTIM = """
optim_wrapper = dict(_delete_=True, constructor='DistillOptimWrapperConstructor',
    student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
    discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4,
                                                           betas=(0.5, 0.9))))
"""


def test_adversarial_two_optimizers_and_resume(tiny_camvid, teacher, tmp_path):
    work = str(tmp_path / 'work')
    cfg = Config.fromfile(
        write_config(
            str(tmp_path / 'skd.py'),
            tiny_camvid,
            work,
            distiller(teacher, SKD),
            extra=HOOKS + ADV_OPTIM))
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    d_params = {n for n, _ in model.named_parameters() if '.discriminator.' in n}
    s_opt = runner.optim_wrapper['student'].optimizer
    d_opt = runner.optim_wrapper['discriminator'].optimizer
    s_ids = {id(p) for g in s_opt.param_groups for p in g['params']}
    d_ids = {id(p) for g in d_opt.param_groups for p in g['params']}
    named = dict(model.named_parameters())
    assert d_params and {id(named[n]) for n in d_params} == d_ids and not (s_ids & d_ids)
    assert {'train/loss_pi', 'train/loss_pa', 'train/loss_hkd', 'train/loss_hkd.critic'} <= \
        set(runner.message_hub.log_scalars)
    assert len(d_opt.state) > 0  # Adam stepped the critic
    ckpt = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu')
    assert set(ckpt['optimizer']) >= {'student', 'discriminator'} or \
        'discriminator' in str(list(ckpt['optimizer']))
    d_before = {n: named[n].detach().clone() for n in d_params}

    cfg = Config.fromfile(
        write_config(
            str(tmp_path / 'skd3.py'),
            tiny_camvid,
            work,
            distiller(teacher, SKD),
            max_iters=3,
            extra=HOOKS + ADV_OPTIM))
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3
    named = dict(runner.model.named_parameters())
    assert any(not torch.equal(named[n], v) for n, v in d_before.items())  # critic trained on


@needs_torchrun
def test_ddp_two_process_cpu(tiny_camvid, teacher, tmp_path):
    """Two processes, an adversarial recipe, a frozen backbone and a loss that is off in the
    first iteration (its trainable connector gets no gradient from it), all with DDP's
    find_unused_parameters=False: DDP stops at the second iteration if any parameter missed
    its gradient in the first."""
    work = str(tmp_path / 'work')
    model = distiller(
        teacher,
        dict(
            SKD,
            loss_fit=dict(
                type='FitNetsLoss', student='s_mid', teacher='t_mid',
                schedule=dict(warmup_iters=1))),
        freeze_student=dict(modules=['backbone'], iters=1),
        connectors=dict(s_mid=dict(type='ConvBNConnector', in_channels=16, out_channels=32)))
    model['taps'].update(s_mid='student:backbone[2]', t_mid='teacher:backbone[2]')
    cfg_file = write_config(
        str(tmp_path / 'ddp.py'),
        tiny_camvid,
        work,
        model,
        extra=HOOKS + ADV_OPTIM +
        "model_wrapper_cfg = dict(type='DistillerDataParallel', find_unused_parameters=False)\n")
    proc, _ = run_torchrun(cfg_file)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert osp.isfile(osp.join(work, 'student_latest.pth'))
    logs = glob.glob(osp.join(work, '*', '*.log'))
    text = open(logs[0]).read()
    assert 'loss_hkd.critic' in text and 'loss_pi' in text and 'loss_fit' in text
    assert 'find_unused_parameters=False' in text  # the run really used it


NAN_LOSS = """
import os

import torch
import torch.nn as nn
from mmengine.registry import MODELS


@MODELS.register_module()
class _NaNOnRank1(nn.Module):
    extra_inputs = ()

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, student, teacher, **extra):
        self.calls += 1
        loss = ((student - teacher.detach()) ** 2).mean()
        if int(os.environ.get('RANK', 0)) == 1 and self.calls >= 2:  # rank 1, iteration 2
            loss = loss * float('nan')
        return loss
"""


@needs_torchrun
def test_ddp_non_finite_loss_on_one_rank_stops_every_rank(tiny_camvid, teacher, tmp_path):
    """A NaN loss on rank 1 only: NonFiniteLossHook raises there; rank 0 (finite loss) stops at
    its next collective or is terminated by torchrun's agent; the job exits non-zero at once."""
    (tmp_path / 'nan_on_rank1.py').write_text(NAN_LOSS)
    work = str(tmp_path / 'work')
    model = distiller(
        teacher, dict(loss_nan=dict(type='_NaNOnRank1', student='s_logits', teacher='t_logits')))
    cfg_file = write_config(
        str(tmp_path / 'nan.py'),
        tiny_camvid,
        work,
        model,
        max_iters=6,
        extra=HOOKS +
        "custom_imports = dict(imports=['rtkd', 'nan_on_rank1'], allow_failed_imports=False)\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get('PYTHONPATH')) if p)
    proc, seconds = run_torchrun(cfg_file, env=dict(PYTHONPATH=path), timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert re.search(r'FloatingPointError: non-finite loss at iteration 2: loss_nan=nan', out), \
        out[-3000:]
    assert not glob.glob(osp.join(work, 'iter_4.pth'))  # nobody trained on
    # rank 0's own loss was finite, but it must not write the diverged iteration's checkpoint
    assert not osp.isfile(osp.join(work, 'iter_2.pth')), 'rank 0 wrote a NaN checkpoint'
    print(f'2-process run with a NaN on rank 1 stopped after {seconds:.1f} s')


def test_student_checkpoints_are_pruned_like_checkpoint_hook(tiny_camvid, teacher, tmp_path):
    """student_iter_*.pth follow CheckpointHook's max_keep_ckpts (here 2 of 4 saves)."""
    work = str(tmp_path / 'work')
    extra = ("custom_hooks = [dict(type='StudentCheckpointHook', interval=1)]\n"
             "model_wrapper_cfg = dict(type='DistillerDataParallel')\n"
             "default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2))\n")
    cfg_file = write_config(
        str(tmp_path / 'kd.py'), tiny_camvid, work, distiller(teacher), max_iters=4, extra=extra)
    cfg = Config.fromfile(cfg_file)
    cfg.train_cfg.val_interval = 100
    Runner.from_cfg(cfg).train()
    kept = sorted(osp.basename(p) for p in glob.glob(osp.join(work, 'student_iter_*.pth')))
    assert kept == ['student_iter_3.pth', 'student_iter_4.pth']
    assert osp.isfile(osp.join(work, 'student_latest.pth'))


def test_corrupted_latest_checkpoint_names_it_and_resume_falls_back(tiny_camvid, teacher, tmp_path,
                                                                    capsys):
    from mmengine.runner.checkpoint import load_checkpoint

    from rtkd.compat import CheckpointReadError
    work = str(tmp_path / 'work')
    extra = "default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=5))\n" + HOOKS
    cfg_file = write_config(
        str(tmp_path / 'kd.py'), tiny_camvid, work, distiller(teacher), max_iters=3, extra=extra)
    cfg = Config.fromfile(cfg_file)
    cfg.train_cfg.val_interval = 100
    Runner.from_cfg(cfg).train()
    latest = osp.join(work, 'iter_3.pth')
    with open(latest, 'rb') as f:
        head = f.read(4096)
    with open(latest, 'wb') as f:  # an interrupted write
        f.write(head)
    with pytest.raises(CheckpointReadError, match=re.escape(repr(latest))):
        load_checkpoint(torch.nn.Linear(1, 1), latest, map_location='cpu')
    cfg = Config.fromfile(cfg_file)
    cfg.merge_from_dict({'train_cfg.max_iters': 4, 'train_cfg.val_interval': 100})
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 4
    assert "Resuming from the previous checkpoint" in capsys.readouterr().out + open(
        glob.glob(osp.join(work, '*', '*.log'))[-1]).read()
