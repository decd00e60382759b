"""Analysis tools (issue "Seeing what distillation does"): run each tool on tiny real runs.

Two 2-iteration runs of mmseg's stock Fast-SCNN (config built from configs/_base_ + a model dict)
on the tiny CamVid fixture through the real mmengine Runner, with prediction drawing switched on
via configs/_base_/vis_draw.py; then distill_report, show_predictions and show_channels are run on
their work dirs / checkpoints and their outputs are checked (PNG sizes and layout metadata, HTML
tables).
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import helpers
from helpers import CONFIG_DIR, ROOT, tiny_data_options

TOOLS = osp.join(ROOT, 'tools', 'analysis')
# mmseg's stock _base_ folder by path: the same files as 'mmseg::_base_/...', without mmengine
# scanning mmseg's ~200 model-index YAML files at every config parse (seconds per parse)
MMSEG_BASE = osp.join(
    osp.dirname(importlib.util.find_spec('mmseg').origin), '.mim', 'configs', '_base_')

MODEL_CFG = """
_base_ = ['{mmseg_base}/models/fast_scnn.py', '{base}/datasets/camvid.py',
          '{base}/{runtime}', '{base}/schedules/schedule_poly.py']
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=(32, 48), seg_pad_val=255)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(num_classes=11, norm_cfg=norm_cfg,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0)),
    auxiliary_head=[dict(type='FCNHead', in_channels=128, channels=32, num_convs=1,
                         num_classes=11, in_index=-2, norm_cfg=norm_cfg, concat_input=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                          loss_weight=0.4))])
"""


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster (and fair to the other jobs on the box)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_tool(name):
    return helpers.load_tool(osp.relpath(osp.join(TOOLS, f'{name}.py'), helpers.ROOT))


def write_config(folder, runtime='vis_draw.py'):
    path = osp.join(folder, f'fast-scnn_tiny_{osp.splitext(runtime)[0]}.py')
    with open(path, 'w') as f:
        f.write(
            MODEL_CFG.format(
                base=osp.join(CONFIG_DIR, '_base_'), runtime=runtime, mmseg_base=MMSEG_BASE))
    return path


def tiny_run(cfg_path, data_root, work_dir, iters=2, lr=0.01, seed=0, draw=True):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_path)
    opts = tiny_data_options(data_root)
    opts.update({
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': 1,
        'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': 1,
        'default_hooks.visualization.interval': 1,
        'default_hooks.visualization.draw': draw,
        'train_dataloader.dataset.pipeline.2.scale': (64, 48),
        'train_dataloader.dataset.pipeline.3.crop_size': (32, 48),
        'val_dataloader.dataset.pipeline.1.scale': (64, 48),
        'test_dataloader.dataset.pipeline.1.scale': (64, 48),
        'optimizer.lr': lr,
        'optim_wrapper.optimizer.lr': lr,
        'randomness': dict(seed=seed),
        # one process, several Runners: mmengine reuses a visualizer of the same name (and
        # its log folder), so give each run its own
        'visualizer.name': f'vis_{osp.basename(str(work_dir))}',
    })
    cfg.merge_from_dict(opts)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.work_dir = str(work_dir)
    Runner.from_cfg(cfg).train()
    return str(work_dir)


KD_CFG = """
# CWD on the logits, teacher = run_a, student = the same tiny Fast-SCNN config (rtkd Distiller)
_base_ = ['{student}']
model = dict(
    _delete_=True, type='Distiller', student='{student}',
    teacher=dict(config='{student}', checkpoint='{teacher}'),
    taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
    losses=dict(loss_cwd=dict(type='ChannelWiseKD', tau=4.0, loss_weight=3.0,
                              student='s_logits', teacher='t_logits')))
"""


def distiller_available() -> bool:
    from mmengine.registry import MODELS

    import rtkd  # noqa: F401
    return MODELS.get('Distiller') is not None


@pytest.fixture(scope='module')
def runs(tiny_camvid, tmp_path_factory):
    """2-iteration runs, validation after each iteration: ``a`` (lr 0.01, seed 0, draws its
    validation predictions; the teacher), ``b`` (lr 0.02, seed 1; the baseline student) and, when
    rtkd's Distiller is registered, ``kd`` (CWD from ``a`` into the same student config)."""
    import torch
    root = tmp_path_factory.mktemp('vis_runs')
    cfg = write_config(str(root))
    a = tiny_run(cfg, tiny_camvid, root / 'run_a', lr=0.01, seed=0)
    b = tiny_run(cfg, tiny_camvid, root / 'run_b', lr=0.02, seed=1, draw=False)
    out = dict(cfg=cfg, a=a, b=b, kd=None, kd_cfg=None, data=tiny_camvid, root=str(root))
    if distiller_available():
        # teacher file in the shared teacher's format: {'state_dict', 'meta'} (our own file)
        ck = torch.load(osp.join(a, 'iter_2.pth'), map_location='cpu', weights_only=True)
        teacher = str(root / 'teacher.pth')
        torch.save(
            dict(state_dict=ck['state_dict'], meta=dict(dataset_meta=ck['meta']['dataset_meta'])),
            teacher)
        kd_cfg = str(root / 'cwd_logits_tiny.py')
        with open(kd_cfg, 'w') as f:
            f.write(KD_CFG.format(student=cfg, teacher=teacher))
        out['kd'] = tiny_run(kd_cfg, tiny_camvid, root / 'run_kd', draw=False)
        out['kd_cfg'] = kd_cfg
    return out


def need_kd(runs):
    if runs['kd'] is None:
        pytest.skip('rtkd Distiller not registered')


def png_meta(path):
    with Image.open(path) as im:
        return im.size, json.loads(im.text['Description'])


# ---------------------------------------------------------------- visualizer hook (drawing)
def test_draw_true_writes_prediction_images(runs):
    """configs/_base_/vis_draw.py: a run's validation draws prediction images into its work dir."""
    imgs = glob.glob(osp.join(runs['a'], '*', 'vis_data', 'vis_image', '*.png'))
    # 2 val images x 2 validations (iter 1 and 2), interval 1
    assert len(imgs) == 4, imgs
    names = sorted(osp.basename(p) for p in imgs)
    assert names[0].startswith('val_0001TP_000000.png_')
    with Image.open(imgs[0]) as im:
        w, h = im.size
    assert h == 48 and w == 2 * 64  # ground truth | prediction side by side, original size


def test_tensorboard_runtime_config(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(write_config(str(tmp_path), 'vis_tensorboard.py'))
    types = [b['type'] for b in cfg.visualizer.vis_backends]
    has_tb = importlib.util.find_spec('tensorboard') is not None
    assert types == ['LocalVisBackend'] + (['TensorboardVisBackend'] if has_tb else [])
    assert cfg.default_hooks.visualization.type == 'SegVisualizationHook'


# ---------------------------------------------------------------- logs and report
def test_parse_logs_of_a_real_run(runs):
    from rtkd.visualization.run_logs import load_run
    run = load_run(runs['a'], 'A')
    assert [x['step'] for x in run.train] == [1, 2]
    assert [x['step'] for x in run.val] == [1, 2]
    task, distill = run.split_losses()
    assert set(task) == {'decode.loss_ce', 'aux_0.loss_ce'} and distill == []
    assert len(run.class_table) == 11 and 'IoU' in run.class_table['Sky']
    assert osp.basename(runs['cfg'])[:-3] in run.config_names
    assert 0 <= run.final_metrics()['mIoU'] <= 100


def test_parse_logs_of_a_distillation_run(runs):
    need_kd(runs)
    from rtkd.visualization.run_logs import load_run
    run = load_run(runs['kd'])
    assert run.distill_losses == ['loss_cwd']  # declared by the dumped distiller config
    assert run.split_losses() == (['decode.loss_ce', 'aux_0.loss_ce'], ['loss_cwd'])
    _, cwd = run.series('loss_cwd')
    assert len(cwd) == 2 and all(v > 0 for v in cwd)
    assert osp.basename(runs['cfg'])[:-3] in run.config_names  # the student config


def test_archive_run_keeps_what_the_report_reads(runs, tmp_path, monkeypatch):
    """archive_run: the scalars of every launch, the dumped config and a test launch's metrics,
    no checkpoint; the archive reads as the work dir does (curves, test mIoU); no folder of this
    machine in the archived config."""
    import shutil

    from mmengine.config import Config
    from mmengine.runner import Runner

    from rtkd.visualization.run_logs import archive_run, load_run, read_test_metrics
    wd = str(tmp_path / 'run')
    shutil.copytree(runs['a'], wd)
    cfg = Config.fromfile(runs['cfg'])
    opts = tiny_data_options(runs['data'])
    opts.update({
        'test_dataloader.dataset.pipeline.1.scale': (64, 48),
        'visualizer.name': 'vis_archive_test',
        'default_hooks.visualization.draw': False
    })
    cfg.merge_from_dict(opts)
    cfg.work_dir = osp.join(wd, 'test')
    cfg.load_from = osp.join(wd, 'iter_2.pth')
    Runner.from_cfg(cfg).test()  # a real test launch: test/<timestamp>/<timestamp>.json
    tested = read_test_metrics(osp.join(wd, 'test'))
    assert tested is not None
    monkeypatch.setenv('RTKD_TEACHERS', str(tmp_path / 'teachers'))
    dumped, = glob.glob(osp.join(wd, '*.py'))
    with open(dumped, 'a') as f:  # what a real run's dumped config holds
        f.write(f"\nrun_folder = {wd!r}\nteacher_file = {str(tmp_path / 'teachers/t.pth')!r}\n")

    dest = str(tmp_path / 'archive' / 'run_seed0')
    rels = archive_run(wd, dest)
    assert not any(r.endswith('.pth') for r in rels)
    assert sum(r.endswith('vis_data/scalars.json') for r in rels) == 1
    assert any(r.startswith('test' + os.sep) and r.endswith('.json') for r in rels)
    assert any(r.endswith('.py') and os.sep not in r for r in rels)  # the dumped config
    a, b = load_run(wd), load_run(dest)
    assert b.series('mIoU', 'val') == a.series('mIoU', 'val') and len(b.train) == 2
    assert b.config_names == a.config_names
    assert read_test_metrics(osp.join(dest, 'test')) == tested
    kept = Config.fromfile(osp.join(dest, osp.basename(dumped)))
    assert kept.run_folder == 'work_dirs/run' and kept.teacher_file == '$RTKD_TEACHERS/t.pth'
    assert str(tmp_path) not in open(osp.join(dest, osp.basename(dumped))).read()
    assert archive_run(wd, dest) == rels  # again: replaced, no temporary files left
    assert sorted(
        osp.relpath(p, dest) for p in glob.glob(osp.join(dest, '**', '*'), recursive=True)
        if osp.isfile(p)) == rels
    empty = tmp_path / 'empty'
    (empty / '20261202_000000').mkdir(parents=True)  # a launch folder that logged nothing
    with pytest.raises(FileNotFoundError, match='no training or validation logs'):
        archive_run(str(empty), str(tmp_path / 'nothing'))


def test_split_distill_losses_and_class_table(tmp_path):
    """scalars.json only (no text log is read): curves, losses, per-class IoU scalars as
    PerClassIoUMetric logs them (``IoU.<class>``, ``Acc.<class>``; NaN for an absent class)."""
    from rtkd.visualization.run_logs import load_run
    d = tmp_path / 'kd' / '20260101_000000'
    (d / 'vis_data').mkdir(parents=True)
    lines = [
        dict(
            step=s,
            loss=3.0 - s / 10,
            **{
                'decode.loss_ce': 2.0 - s / 10,
                'loss_cwd': 1.0,
                'distill.loss_pair': 0.1
            }) for s in (1, 2, 3)
    ] + [
        dict(step=2, mIoU=1.0, **{
            'IoU.Sky': 10.0,
            'Acc.Sky': 1.0
        }),
        dict(
            step=3,
            mIoU=12.5,
            aAcc=50.0,
            mAcc=20.0,
            **{
                'IoU.Sky': 81.5,
                'IoU.Road': float('nan'),
                'Acc.Sky': 90.1,
                'Acc.Road': float('nan')
            })
    ]
    (d / 'vis_data' / 'scalars.json').write_text(  # json.dumps writes NaN as mmengine does
        '\n'.join(json.dumps(x) for x in lines) + '\n{"step": 4, "loss": 1.')  # cut last line
    # a later test-only launch (its metrics JSON, no scalars): must not replace the val table
    t = tmp_path / 'kd' / '20260102_000000'
    t.mkdir()
    (t / '20260102_000000.json').write_text(json.dumps({'mIoU': 1.0, 'IoU.Sky': 1.0}))
    # a resumed launch continues the curves (step 3 is logged again and replaces the old line)
    r = tmp_path / 'kd' / '20260103_000000' / 'vis_data'
    r.mkdir(parents=True)
    (r / 'scalars.json').write_text(
        json.dumps({
            'step': 3,
            'loss': 0.5
        }) + '\n' + json.dumps({
            'step': 4,
            'loss': 0.4
        }) + '\n')
    run = load_run(str(tmp_path / 'kd'))
    assert [x['step'] for x in run.train] == [1, 2, 3, 4] and run.train[2]['loss'] == 0.5
    assert run.split_losses() == (['decode.loss_ce'], ['loss_cwd', 'distill.loss_pair'])
    assert run.class_table['Sky'] == {'IoU': 81.5, 'Acc': 90.1}
    assert np.isnan(run.class_table['Road']['IoU'])
    assert run.final_metrics()['mIoU'] == 12.5
    from rtkd.visualization.run_logs import read_test_metrics
    assert read_test_metrics(str(tmp_path / 'kd')) == {'mIoU': 1.0, 'IoU.Sky': 1.0}


def test_distill_report_html(runs, tmp_path):
    """baseline (run b) vs distilled (run kd, or run a without the Distiller), with a stats CSV
    in tools/analysis/model_stats.py's column layout."""
    other = runs['kd'] or runs['a']
    stats = tmp_path / 'stats.csv'
    stats.write_text('model,params_inference_m,gflops,latency_ms,config,notes\n'
                     f'Fast-SCNN,1.403,0.9,60.1,{runs["cfg"]},\nX,9.9,1,1.0,other.py,\n')
    out = tmp_path / 'report.html'
    tool = load_tool('distill_report')
    tool.main([
        runs['b'], other, '--names', 'baseline', 'distilled', '--stats',
        str(stats), '--out',
        str(out), '--markdown',
        str(tmp_path / 'tables.md')
    ])
    page = out.read_text()
    md = (tmp_path / 'tables.md').read_text()  # the same tables through pandas + tabulate
    assert md.count('| baseline ') == 1 and md.count('| distilled ') == 1
    per_class_md = md.split('## Per-class IoU')[1]
    assert per_class_md.count('\n| ') == 12 and '| Bicyclist ' in per_class_md
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) == 3 and all(len(i) > 1000 for i in imgs)
    metrics = page.split('<table id="metrics">')[1].split('</table>')[0]
    assert metrics.count('<tr>') == 3  # header + 2 runs
    assert 'baseline' in metrics and 'distilled' in metrics and 'ΔmIoU vs baseline' in metrics
    # both runs train the same student config (the distiller's student) -> both rows match
    # (1.403: a value no metric of the tiny runs can print, unlike 1.40)
    assert metrics.count('>1.403<') == 2 and metrics.count('>60.1<') == 2
    assert 'params_inference_m' in metrics and 'latency_ms' in metrics and 'gflops' in metrics
    per_class = page.split('<table id="per-class-iou">')[1].split('</table>')[0]
    assert per_class.count('<tr class="cls">') == 11 and 'Bicyclist' in per_class
    if runs['kd']:
        assert 'distillation losses: loss_cwd' in page
    assert 'http' not in page.replace('http-equiv', '')  # self-contained
    for b64 in imgs:  # each embedded plot is a real PNG
        import base64
        import io
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            assert im.format == 'PNG' and im.size[0] > 500


def test_distill_report_errors(runs, tmp_path, capsys):
    tool = load_tool('distill_report')
    missing = str(tmp_path / 'no_such_run')
    with pytest.raises(SystemExit, match='no_such_run.*does not exist'):
        tool.main([runs['a'], missing, '--out', str(tmp_path / 'r.html')])
    os.makedirs(tmp_path / 'empty_run')
    with pytest.raises(SystemExit, match='empty_run.*holds no training or validation logs'):
        tool.main([str(tmp_path / 'empty_run'), '--out', str(tmp_path / 'r.html')])
    with pytest.raises(SystemExit, match='one name per work dir'):
        tool.main([runs['a'], '--names', 'x', 'y'])
    # the stats CSV is optional: a missing one only warns
    out = tmp_path / 'no_stats.html'
    tool.main([runs['a'], '--stats', str(tmp_path / 'missing.csv'), '--out', str(out)])
    assert out.is_file() and 'latency' not in out.read_text()
    assert 'missing.csv' in capsys.readouterr().err


def test_distill_report_cli(runs, tmp_path):
    out = tmp_path / 'cli.html'
    res = subprocess.run(
        [sys.executable,
         osp.join(TOOLS, 'distill_report.py'), runs['a'], '--out',
         str(out)],
        capture_output=True,
        text=True,
        timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert out.is_file() and 'wrote' in res.stdout


# ---------------------------------------------------------------- predictions grid
def test_show_predictions(runs, tmp_path):
    out = tmp_path / 'pred.png'
    tool = load_tool('show_predictions')
    ck_a, ck_b = osp.join(runs['a'], 'iter_2.pth'), osp.join(runs['b'], 'iter_2.pth')
    # the distilled column: the Distiller config + its whole checkpoint (student weights taken)
    kd = [runs['kd_cfg'], osp.join(runs['kd'], 'iter_2.pth')] if runs['kd'] else [runs['cfg'], ck_a]
    summary = tool.main([
        '--dataset-config', runs['cfg'], '--data-root', runs['data'], '-n', '2', '--teacher',
        runs['cfg'], ck_a, '--student', runs['cfg'], ck_b, '--distilled', *kd, '--model',
        'teacher again', runs['cfg'], ck_a, '--out',
        str(out)
    ])
    (w, h), meta = png_meta(out)
    assert meta == summary
    assert meta['rows'] == 2 and meta['cols'] == 6 and meta['panels'] == 12
    assert meta['columns'] == [
        'image', 'ground truth', 'teacher', 'student', 'distilled', 'teacher again'
    ]
    assert meta['classes'][0] == 'Sky' and len(meta['classes']) == 11
    # the same weights in two columns give the same per-image mIoU
    assert meta['mean_image_miou']['teacher'] == meta['mean_image_miou']['teacher again']
    assert 6 * 260 < w < 6 * 260 + 80  # 6 panels of 2.6 in at 100 dpi plus margins
    assert 2 * 195 + 50 < h < 2 * 195 + 150  # two rows of 48x64 panels, titles and legend


def test_show_predictions_folder_and_errors(runs, tmp_path):
    tool = load_tool('show_predictions')
    ck = osp.join(runs['a'], 'iter_2.pth')
    out = tmp_path / 'folder.png'
    meta = tool.main([
        '--img-dir',
        osp.join(runs['data'], 'test'), '-n', '1', '--student', runs['cfg'], ck, '--out',
        str(out)
    ])
    assert meta['columns'] == ['image', 'student'] and meta['rows'] == 1
    assert png_meta(out)[1]['classes'][-1] == 'Bicyclist'  # palette from the checkpoint meta
    with pytest.raises(SystemExit, match='student checkpoint .*nope.pth.* does not exist'):
        tool.main(['--student', runs['cfg'], str(tmp_path / 'nope.pth')])
    with pytest.raises(SystemExit, match='at least one model'):
        tool.main(['-n', '1'])


# ---------------------------------------------------------------- channel distributions
def test_show_channels(runs, tmp_path):
    out = tmp_path / 'channels.png'
    tool = load_tool('show_channels')
    img = sorted(glob.glob(osp.join(runs['data'], 'val', '*.png')))[0]
    ck_a, ck_b = osp.join(runs['a'], 'iter_2.pth'), osp.join(runs['b'], 'iter_2.pth')
    student = [runs['kd_cfg'], osp.join(runs['kd'], 'iter_2.pth')
               ] if runs['kd'] else [runs['cfg'], ck_b]
    summary = tool.main([
        '--teacher', runs['cfg'], ck_a, '--student', *student, '--layer-teacher',
        'decode_head.conv_seg', '--layer-student', 'decode_head.conv_seg', '--img', img, '--tau',
        '4', '--out',
        str(out)
    ])
    (w, h), meta = png_meta(out)
    assert meta['rows'] == 12 and meta['cols'] == 2  # input row + 11 class channels
    assert meta['channels'] == list(range(11)) and meta['row_labels'][0].startswith('0: Sky')
    assert meta['teacher_shape'][0] == 11 and len(meta['kl']) == 11
    assert all(k >= -1e-6 for k in meta['kl']) and summary['cwd_loss'] > 0
    assert h > w  # 12 rows, 2 columns
    # the same network as teacher and student: every channel's divergence is 0
    same = tool.main([
        '--teacher', runs['cfg'], ck_a, '--student', runs['cfg'], ck_a, '--img', img, '--channels',
        '0', '3', '--no-image', '--out',
        str(tmp_path / 'same.png')
    ])
    assert same['rows'] == 2 and max(abs(k) for k in same['kl']) < 1e-5


def test_show_channels_tuple_tap_and_bad_name(runs, tmp_path):
    tool = load_tool('show_channels')
    img = sorted(glob.glob(osp.join(runs['data'], 'val', '*.png')))[0]
    ck_a, ck_b = osp.join(runs['a'], 'iter_2.pth'), osp.join(runs['b'], 'iter_2.pth')
    # backbone returns a tuple of 3 maps: index the last (128 channels) -> top-4 by divergence
    meta = tool.main([
        '--teacher', runs['cfg'], ck_a, '--student', runs['cfg'], ck_b, '--layer-teacher',
        'backbone[2]', '--layer-student', 'backbone[2]', '--img', img, '--max-channels', '4',
        '--out',
        str(tmp_path / 'bb.png')
    ])
    assert meta['teacher_shape'][0] == 128 and len(meta['channels']) == 4
    with pytest.raises(
            SystemExit, match=r"no module 'decode_head\.conv_sge'.*"
            r"decode_head\.conv_seg"):
        tool.main([
            '--teacher', runs['cfg'], ck_a, '--student', runs['cfg'], ck_b, '--layer-student',
            'decode_head.conv_sge', '--img', img
        ])
    with pytest.raises(SystemExit, match='not a tuple'):
        tool.main([
            '--teacher', runs['cfg'], ck_a, '--student', runs['cfg'], ck_b, '--layer-student',
            'decode_head.conv_seg[0]', '--img', img
        ])
