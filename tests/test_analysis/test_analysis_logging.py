"""Analysis on the libraries made for it (issue 13, item 4): the figures use the CWD loss's own
functions, per-class IoU is a logged scalar (PerClassIoUMetric, the CamVid base's evaluator),
TensorBoard is switched on by one line in a real network config and its event files hold the
losses, and a test launch's metrics are read from mmengine's JSON output."""
from __future__ import annotations

import glob
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import CONFIG_DIR, ROOT, tiny_data_options

NETWORK = osp.join(ROOT, 'configs', 'fast_scnn', 'fast-scnn_1xb8-2k_camvid-360x480.py')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- figures = the loss's maths
def test_channel_figure_values_are_the_cwd_loss():
    from rtkd.distill.losses import ChannelWiseKD
    from rtkd.visualization.figures import channel_kl, spatial_distributions
    g = torch.Generator().manual_seed(0)
    t = torch.randn(1, 3, 4, 5, generator=g, dtype=torch.float64)
    s = torch.randn(1, 3, 4, 5, generator=g, dtype=torch.float64)
    tau = 4.0
    kl = channel_kl(t, s, tau)
    assert kl.dtype == torch.float64 and kl.shape == (3, )
    assert float(kl.mean()) == pytest.approx(float(ChannelWiseKD(tau=tau)(s, t)), rel=1e-12)
    # by hand: T^2 KL(softmax(t_c / T) || softmax(s_c / T)) over the 20 positions
    for c in range(3):
        pt = np.exp(t[0, c].numpy().ravel() / tau)
        pt /= pt.sum()
        ps = np.exp(s[0, c].numpy().ravel() / tau)
        ps /= ps.sum()
        assert float(kl[c]) == pytest.approx(
            tau**2 * float((pt * np.log(pt / ps)).sum()), rel=1e-10)
    dist = spatial_distributions(t, tau)
    assert dist.shape == (3, 4, 5)
    assert torch.allclose(dist.flatten(1).sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(dist[1].flatten(), F.softmax(t[0, 1].flatten() / tau, 0))
    # a student map of another size is resized to the teacher's first (the figure only)
    small = torch.randn(1, 3, 2, 3, generator=g, dtype=torch.float64)
    up = F.interpolate(small, size=(4, 5), mode='bilinear', align_corners=False)
    assert torch.allclose(channel_kl(t, small, tau).mean(), ChannelWiseKD(tau=tau)(up, t))


# ---------------------------------------------------------------- per-class IoU as scalars
def _sample(pred, gt):
    return dict(
        pred_sem_seg=dict(data=torch.tensor([pred])), gt_sem_seg=dict(data=torch.tensor([gt])))


def test_per_class_iou_metric_by_hand():
    from mmseg.evaluation.metrics import IoUMetric

    from rtkd.evaluation import PerClassIoUMetric
    classes = ('road', 'car', 'sky', 'never')
    pred = [[0, 0, 1], [1, 2, 2]]
    gt = [[0, 1, 1], [1, 2, 255]]  # the last pixel is ignored
    metric, plain = PerClassIoUMetric(), IoUMetric()
    for m in (metric, plain):
        m.dataset_meta = dict(classes=classes)
        m.process({}, [_sample(pred, gt)])
    res, ref = metric.evaluate(1), plain.evaluate(1)
    # road: 1 hit, pred 2, gt 1 -> IoU 1/2, Acc 1/1; car: 2 hits of pred 2 / gt 3 -> 2/3, 2/3;
    # sky: the ignored pixel drops out -> 1/1; 'never' is absent -> nan
    assert res['IoU.road'] == 50.0 and res['Acc.road'] == 100.0
    assert res['IoU.car'] == 66.67 and res['Acc.car'] == 66.67
    assert res['IoU.sky'] == 100.0 and math.isnan(res['IoU.never'])
    assert {k: res[k] for k in ref} == ref  # mmseg's own means, unchanged
    assert ref['mIoU'] == pytest.approx((50 + 66.67 + 100) / 3, abs=0.01)
    assert len(res) == len(ref) + 2 * len(classes)
    with pytest.raises(KeyError, match='unknown class_metrics'):
        PerClassIoUMetric(class_metrics=('IoUs', ))
    dice = PerClassIoUMetric(class_metrics=('Dice', ))
    dice.dataset_meta = dict(classes=classes)
    dice.process({}, [_sample(pred, gt)])
    with pytest.raises(KeyError, match=r"not computed by iou_metrics=\['mIoU'\].*mDice"):
        dice.evaluate(1)


def test_camvid_base_evaluates_with_the_per_class_metric():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import METRICS

    import rtkd  # noqa: F401
    cfg = Config.fromfile(osp.join(CONFIG_DIR, '_base_', 'datasets', 'camvid.py'))
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'PerClassIoUMetric'
    init_default_scope('mmseg')
    assert type(METRICS.build(cfg.val_evaluator)).__name__ == 'PerClassIoUMetric'


# ---------------------------------------------------------------- loss kinds from the configs
def test_loss_kinds_come_from_the_dumped_config_not_a_guess(tmp_path):
    from rtkd.visualization.run_logs import load_run
    line = {'step': 1, 'loss': 1.0, 'decode.loss_ce': 0.5, 'aux.loss_logits': 0.3, 'loss_cwd': 0.2}
    for kind, model in (('plain', "dict(type='EncoderDecoder')"),
                        ('kd', "dict(type='Distiller', student='s.py', "
                         "losses=dict(loss_cwd=dict(type='ChannelWiseKD')))")):
        d = tmp_path / kind / '20260101_000000' / 'vis_data'
        d.mkdir(parents=True)
        (d / 'scalars.json').write_text(json.dumps(line) + '\n')
        (tmp_path / kind / f'{kind}.py').write_text(f'model = {model}\n')
    # a plain run's losses are all task losses, whatever their names look like
    assert load_run(str(
        tmp_path / 'plain')).split_losses() == (['decode.loss_ce', 'aux.loss_logits',
                                                 'loss_cwd'], [])
    # a distillation run: what its config declares
    assert load_run(str(tmp_path / 'kd')).split_losses() == (['decode.loss_ce',
                                                              'aux.loss_logits'], ['loss_cwd'])


# ---------------------------------------------------------------- TensorBoard, one line
def _tensorboard_line() -> str:
    """The one line configs/_base_/vis_tensorboard.py documents (what the README shows)."""
    with open(osp.join(CONFIG_DIR, '_base_', 'vis_tensorboard.py')) as f:
        lines = [
            ln.lstrip('#').strip() for ln in f
            if ln.lstrip('#').strip().startswith('visualizer = dict(vis_backends=[')
        ]
    assert len(lines) == 1, lines
    return lines[0]


def test_tensorboard_base_beside_network_bases_is_refused(tmp_path):
    """Why the switch is a line and not a `_base_` entry: mmengine refuses it."""
    from mmengine.config import Config
    bad = tmp_path / 'bad.py'
    bad.write_text(f"_base_ = [{NETWORK!r}, "
                   f"{osp.join(CONFIG_DIR, '_base_', 'vis_tensorboard.py')!r}]\n")
    with pytest.raises(KeyError, match='Duplicate key is not allowed among bases'):
        Config.fromfile(str(bad))


def _tiny_cfg(cfg, data_root, work_dir, iters=2):
    opts = tiny_data_options(data_root)
    opts.update({
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': iters,
        'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': 1,
        'train_dataloader.dataset.pipeline.2.scale': (64, 48),
        'train_dataloader.dataset.pipeline.3.crop_size': (48, 64),
        'val_dataloader.dataset.pipeline.1.scale': (64, 48),
        'test_dataloader.dataset.pipeline.1.scale': (64, 48),
        'model.data_preprocessor.size': (48, 64),
        'visualizer.name': f'vis_{osp.basename(str(work_dir))}',
    })
    cfg.merge_from_dict(opts)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.work_dir = str(work_dir)
    return cfg


def test_tensorboard_one_line_in_a_network_config_writes_real_event_files(tiny_camvid, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rtkd.visualization.run_logs import load_run, read_test_metrics
    line = _tensorboard_line()
    path = tmp_path / 'fast-scnn_tensorboard.py'
    path.write_text(f'_base_ = [{NETWORK!r}]\n{line}\n')
    cfg = Config.fromfile(str(path))
    backends = [b['type'] for b in cfg.visualizer.vis_backends]
    assert backends == ['LocalVisBackend', 'TensorboardVisBackend']
    assert cfg.visualizer.type == 'SegLocalVisualizer'  # merged into the inherited visualizer
    wd = tmp_path / 'run'
    Runner.from_cfg(_tiny_cfg(cfg, tiny_camvid, wd)).train()

    events = glob.glob(str(wd / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1, events
    acc = EventAccumulator(events[0])
    acc.Reload()
    tags = acc.Tags()['scalars']
    assert {'loss', 'decode.loss_ce', 'lr', 'mIoU', 'IoU.Sky', 'Acc.Bicyclist'} <= set(tags)
    loss = acc.Scalars('loss')
    run = load_run(str(wd))
    steps, values = run.series('loss')
    assert [e.step for e in loss] == steps == [1, 2]
    assert [e.value for e in loss] == pytest.approx(values, rel=1e-6)  # float32 in events
    sky = acc.Scalars('IoU.Sky')[0].value
    assert sky == pytest.approx(run.class_table['Sky']['IoU'], abs=1e-4)
    assert len(run.class_table) == 11  # per-class IoU read from scalars.json

    # a separate test launch (what `mim test` does): metrics in mmengine's JSON output
    tcfg = _tiny_cfg(Config.fromfile(str(path)), tiny_camvid, wd / 'test')
    tcfg.load_from = str(wd / 'iter_2.pth')
    metrics = Runner.from_cfg(tcfg).test()
    out = read_test_metrics(str(wd / 'test'))
    files = glob.glob(str(wd / 'test' / '*' / '*.json'))
    assert len(files) == 1 and json.load(open(files[0])) == out
    assert out['mIoU'] == pytest.approx(float(metrics['mIoU']))
    assert out['IoU.Sky'] == pytest.approx(float(metrics['IoU.Sky']))
    assert read_test_metrics(str(wd / 'nothing_here')) is None
