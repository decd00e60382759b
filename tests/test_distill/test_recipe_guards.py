"""Recipes and small runs that do not mislead (issue 14, items 4 first bullet, 5 and 6).

* a recipe whose ``model.student`` was swapped logs, at the start of training, that it trains
  with its ``_base_``'s optimizer / schedule and names the differing keys and the fix
  (``RecipeSettingsHook``, a default hook of the runtime base); ``--student-settings`` takes
  the student's settings;
* a run whose last iteration is not a multiple of the logger interval - a short ``--resume`` -
  still prints a train line for it (``FinalTrainLogHook``), and only one;
* ``--show-dir`` draws every test image, with ``tools/test.py`` and with mmseg's own test tool
  (what ``mim test`` runs; ``TestVisualizationIntervalHook``).

Tiny CamVid (tests/helpers/data.py), 32x48 crops, the tiny mmseg model of tests/helpers/models.py.
"""
from __future__ import annotations

import copy
import glob
import logging
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import rtkd  # noqa: F401
from rtkd.distill.hooks import RecipeSettingsHook
from rtkd.distill.recipe_checks import apply_student_settings, compare_recipe_settings
from helpers import ROOT, seg_model, write_config

ADAM = ("optim_wrapper = dict(_delete_=True, type='OptimWrapper', "
        "optimizer=dict(type='Adam', lr=0.0005))\n")


@pytest.fixture(scope='module')
def teacher(tmp_path_factory) -> tuple:
    """A tiny teacher config file and its checkpoint."""
    root = tmp_path_factory.mktemp('recipe_teacher')
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmseg'\nmodel = {seg_model(8)!r}\n")
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(seg_model(8))
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    return cfg_path, ckpt


def _recipes(tmp_path, tiny_camvid, teacher_files, max_iters=1) -> dict:
    """Student configs A (SGD, the runtime's schedule) and B (Adam), a recipe built on A and a
    child recipe that swaps only ``model.student`` to B."""
    work = str(tmp_path / 'work')
    a = write_config(
        str(tmp_path / 'student_a.py'),
        tiny_camvid,
        work,
        seg_model(4),
        max_iters=max_iters,
        extra="default_scope = 'mmseg'\n")
    b = write_config(
        str(tmp_path / 'student_b.py'),
        tiny_camvid,
        work,
        seg_model(4),
        max_iters=max_iters,
        extra="default_scope = 'mmseg'\n" + ADAM)
    distiller = dict(
        type='Distiller',
        student=a,
        teacher=dict(config=teacher_files[0], checkpoint=teacher_files[1]),
        taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
        losses=dict(
            loss_cwd=dict(
                type='ChannelWiseKD',
                tau=4.0,
                loss_weight=3.0,
                student='s_logits',
                teacher='t_logits')))
    recipe = str(tmp_path / 'recipe_a.py')
    with open(recipe, 'w') as f:
        f.write(f"_base_ = [{a!r}]\nmodel = dict(_delete_=True, **{distiller!r})\n")
    swapped = str(tmp_path / 'recipe_swapped_b.py')
    with open(swapped, 'w') as f:
        f.write(f"_base_ = [{recipe!r}]\nmodel = dict(student={b!r})\n")
    return dict(a=a, b=b, recipe=recipe, swapped=swapped, work=work)


def test_swapped_student_warns_at_start_with_the_keys(tiny_camvid, teacher, tmp_path):
    files = _recipes(tmp_path, tiny_camvid, teacher)
    cfg = Config.fromfile(files['swapped'])
    cfg.experiment_name = 'recipe_swapped'
    runner = Runner.from_cfg(cfg)  # the hook comes from configs/_base_/default_runtime.py
    runner.train()
    log = open(glob.glob(osp.join(runner.log_dir, '*.log'))[0]).read()
    start = log.index('recipe settings differ')
    assert start < log.index('Iter(train) [1/1]')  # logged before the first train line
    line = log[log.rindex('\n', 0, start) + 1:log.index('\n', start)]
    assert ' - WARNING - ' in line, line
    assert f"recipe settings differ from the student config's own ({files['b']})" in line
    assert 'this run trains with optimizer SGD(lr=0.01' in line, line  # the recipe's (A's)
    assert 'the student config has optimizer Adam(lr=0.0005)' in line, line
    assert 'Differing keys: optim_wrapper.optimizer.{type, lr, momentum, weight_decay}' in line
    assert 'not from model.student' in line and '--student-settings' in line
    assert "make the student config the recipe's first _base_" in line


def test_recipe_with_its_own_student_logs_info_and_student_settings_fix(
        tiny_camvid, teacher, tmp_path):
    files = _recipes(tmp_path, tiny_camvid, teacher)
    logger = MMLogger.get_instance('recipe_guard_info', log_level='INFO')
    hook = RecipeSettingsHook()
    records = []
    handler = logging.Handler()  # collects what the hook logs
    handler.emit = lambda record: records.append((record.levelname, record.getMessage()))
    logger.addHandler(handler)
    try:
        hook.before_train(SimpleNamespace(cfg=Config.fromfile(files['recipe']), logger=logger))
        assert records[-1][0] == 'INFO', records
        assert records[-1][1].startswith('recipe settings: optimizer SGD(lr=0.01')
        assert f"the same as the student config's own ({files['a']})" in records[-1][1]

        swapped = Config.fromfile(files['swapped'])
        swapped.merge_from_dict({
            'train_dataloader.dataset.data_root': '/elsewhere',
            'train_dataloader.num_workers': 3
        })
        assert apply_student_settings(swapped) == ['optim_wrapper']
        assert swapped.optim_wrapper.optimizer == dict(type='Adam', lr=0.0005)
        assert swapped.train_dataloader.dataset.data_root == '/elsewhere'  # location kept
        assert swapped.train_dataloader.num_workers == 3
        hook.before_train(SimpleNamespace(cfg=swapped, logger=logger))
        assert records[-1][0] == 'INFO', records
        assert records[-1][1].startswith('recipe settings: optimizer Adam(lr=0.0005)')
    finally:
        logger.removeHandler(handler)


def test_keyed_optimizers_compare_the_student_entry(tiny_camvid, teacher, tmp_path):
    files = _recipes(tmp_path, tiny_camvid, teacher)
    cfg = Config.fromfile(files['recipe'])
    own = copy.deepcopy(cfg.optim_wrapper)
    sched = copy.deepcopy(cfg.param_scheduler)
    cfg.optim_wrapper = dict(
        constructor='DistillOptimWrapperConstructor',
        student=own,
        discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4)))
    cfg.param_scheduler = dict(student=sched, discriminator=[])
    report = compare_recipe_settings(cfg)
    assert report['keyed'] and report['differ'] == []  # the discriminator is not the student's
    cfg.optim_wrapper.student.optimizer.lr = 0.5
    report = compare_recipe_settings(cfg)
    assert report['differ'] == [('optim_wrapper.optimizer.lr', 0.5, 0.01)]


def _log_of(runner) -> str:
    return open(glob.glob(osp.join(runner.log_dir, '*.log'))[0]).read()


def test_train_line_at_the_last_iteration_after_a_short_resume(tiny_camvid, tmp_path):
    work = str(tmp_path / 'work')

    def run(max_iters, interval, resume, name):
        cfg = Config.fromfile(
            write_config(
                str(tmp_path / f'{name}.py'),
                tiny_camvid,
                work,
                seg_model(4),
                max_iters=max_iters,
                extra="default_scope = 'mmseg'\n"))
        cfg.merge_from_dict({
            'default_hooks.logger.interval': interval,
            'default_hooks.checkpoint.interval': 3,
            'train_cfg.val_interval': 100
        })
        cfg.resume, cfg.experiment_name = resume, name
        cfg.visualizer.name = name  # a new visualizer instance, saving into this run's log_dir
        runner = Runner.from_cfg(cfg)
        runner.train()
        return runner, _log_of(runner)

    # LoggerHook itself logs iteration 3 (interval 3): the hook must not add a second line
    _, log = run(3, 3, False, 'final_log_a')
    assert log.count('Iter(train) [3/3]') == 1, log[-2000:]
    # resumed at 3 of 5 with interval 10: LoggerHook alone prints no train line at all
    runner, log = run(5, 10, True, 'final_log_b')
    assert 'resumed epoch: 0, iter: 3' in log
    # runs started within one second share a log file: read only what the resumed run wrote
    log = log[log.index('resumed epoch: 0, iter: 3'):]
    lines = [ln for ln in log.splitlines() if 'Iter(train)' in ln]
    assert len(lines) == 1 and 'Iter(train) [5/5]' in lines[0], lines
    assert 'decode.loss_ce: ' in lines[0] and 'loss: ' in lines[0]
    scalars = open(glob.glob(osp.join(runner.log_dir, 'vis_data', '*.json'))[0]).read()
    assert '"step": 5' in scalars and '"decode.loss_ce"' in scalars  # the scalars file too


@pytest.fixture(scope='module')
def test_setup(tmp_path_factory, tiny_camvid):
    """A tiny segmentor config on the project's runtime base and a checkpoint for it."""
    root = tmp_path_factory.mktemp('show_dir')
    cfg_file = write_config(
        str(root / 'seg.py'),
        tiny_camvid,
        str(root / 'work'),
        seg_model(4),
        extra="default_scope = 'mmseg'\n")
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(seg_model(4))
    ckpt = str(root / 'seg.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    images = sorted(osp.basename(p) for p in glob.glob(osp.join(tiny_camvid, 'test', '*.png')))
    return cfg_file, ckpt, images


def _drawn(show_dir: str) -> list:
    return sorted(
        osp.basename(p) for p in glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True))


def _run_tool(tool: str, cfg_file: str, ckpt: str, show_dir: str, work: str) -> str:
    args = [sys.executable, tool, cfg_file, ckpt, '--show-dir', show_dir, '--work-dir', work]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)  # this checkout's rtkd
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.parametrize('tool', ['tools/test.py', 'mmseg'])
def test_show_dir_draws_every_test_image(test_setup, tool, tmp_path):
    cfg_file, ckpt, images = test_setup
    assert len(images) >= 2  # fewer than the hook's default interval (50)
    show_dir = str(tmp_path / 'show')
    if tool == 'mmseg':  # what `mim test mmseg CFG --checkpoint CKPT --show-dir DIR` runs
        import mmseg
        script = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'test.py')
        out = _run_tool(script, cfg_file, ckpt, show_dir, str(tmp_path / 'w'))
        assert ('test: SegVisualizationHook draws every test image, not every 50th batch'
                in out), out[-3000:]
    else:
        _run_tool(osp.join(ROOT, tool), cfg_file, ckpt, show_dir, str(tmp_path / 'w'))
    drawn = _drawn(show_dir)
    assert len(drawn) == len(images), (drawn, images)
    for name in images:
        assert any(d.startswith(f'test_{name}') for d in drawn), (name, drawn)


def test_train_script_student_settings_flag(tiny_camvid, teacher, tmp_path):
    files = _recipes(tmp_path, tiny_camvid, teacher)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)  # this checkout's rtkd
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/train.py'), files['swapped'], '--student-settings', '--work-dir',
        str(tmp_path / 'flag')
    ],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert '--student-settings: took optim_wrapper from the student config.' in out, out[-3000:]
    assert 'recipe settings: optimizer Adam(lr=0.0005)' in out
    assert 'recipe settings differ' not in out
