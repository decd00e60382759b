"""Learning benchmark on real CamVid: train each config for a fixed budget, report val mIoU.

Every config (a plain segmentor or a ``Distiller`` recipe) is trained from its own recipe with
the same budget and reduced training resolution, through ``tools/train.py`` (the real Runner),
one after another; then its last checkpoint is evaluated on the split given by ``--eval-split``
at full 360x480. The table also shows the mIoU of a trivial predictor (every pixel = the most
frequent training class), so "it learns" is a measured claim.

Example (the network table in the README)::

    python tools/benchmarks/camvid_learning.py --iters 600 --crop 240 320 \
        configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py configs/espnet/...

Writes ``<work-dir>/learning.md`` and ``learning.csv``.
"""
from __future__ import annotations

import argparse
import glob
import os
import os.path as osp
import sys
import time

import numpy as np

from rtkd.analysis.progress import run_with_progress
from rtkd.visualization.run_logs import load_run

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('configs', nargs='+', help='CamVid configs (segmentors or Distiller recipes)')
    p.add_argument('--names', nargs='+', help='row names (default: config file names)')
    p.add_argument('--iters', type=int, default=600, help='training iterations per config')
    p.add_argument('--crop', type=int, nargs=2, default=(240, 320), help='training crop h w')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--warmup', type=int, default=50, help='linear warm-up iterations')
    p.add_argument('--eval-split', choices=['val', 'test'], default='val')
    p.add_argument('--work-dir', default='work_dirs/bench_learning')
    p.add_argument('--data-root', default=None, help='CamVid folder (default: dataset fallbacks)')
    p.add_argument(
        '--seed',
        type=int,
        default=None,
        help="randomness.seed of every run (default: each config's)")
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: all)')
    p.add_argument(
        '--teacher-config', default=None, help='override the teacher config of Distiller recipes')
    p.add_argument(
        '--teacher-ckpt', default=None, help='override the teacher checkpoint of Distiller recipes')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='passed to tools/train.py for every run (e.g. a loss weight being tuned on val); '
        'written into the table heading')
    p.add_argument(
        '--skip-existing',
        action='store_true',
        help='reuse a finished run found in the work dir (resume after interruption)')
    return p.parse_args()


def write_bench_config(cfg_path: str, work_dir: str, args) -> str:
    """Write ``<work_dir>/bench_config.py``: the config under test plus the common budget.

    The same warm-up + poly schedule, iteration budget, batch size and training crop are
    imposed on every config (its optimizer, losses and augmentation stay its own). For a
    ``Distiller`` recipe the student's preprocessor gets the crop size through the student spec,
    for a ``CohortDistiller`` (online distillation) every member's does; a self-distillation
    or online recipe (no frozen teacher) refuses ``--teacher-config`` / ``--teacher-ckpt``.

    Returns:
        str: path of the written config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(cfg_path)
    h, w = args.crop
    it = args.iters
    warmup = max(1, min(args.warmup, it // 5))
    sched = (f'[dict(type="LinearLR", start_factor=0.1, begin=0, end={warmup}, by_epoch=False), '
             f'dict(type="PolyLR", eta_min=1e-4, power=0.9, begin={warmup}, end={it}, '
             'by_epoch=False)]')
    lines = [
        f'_base_ = [{osp.abspath(cfg_path)!r}]',
        f'train_cfg = dict(max_iters={it}, val_interval={it})',
        f'default_hooks = dict(checkpoint=dict(interval={it}), logger=dict(interval=20))',
    ]
    if args.seed is not None:
        lines.append(f'randomness = dict(seed={args.seed})')
    if isinstance(cfg.get('param_scheduler'), dict):  # one schedule per optimizer (SKD critic)
        others = {k: v for k, v in cfg.param_scheduler.to_dict().items() if k != 'student'}
        lines.append(f'param_scheduler = dict(_delete_=True, student={sched}, '
                     f'**{others!r})')
    else:
        lines.append(f'param_scheduler = {sched}')
    pipeline = [dict(t) for t in cfg.train_dataloader.dataset.pipeline]
    crops = [t for t in pipeline if t['type'] in ('RandomCrop', 'RecordedRandomCrop')]
    if len(crops) != 1:
        raise ValueError(f'{cfg_path}: expected one RandomCrop in the training pipeline, '
                         f'found {len(crops)}; cannot impose the benchmark crop size.')
    crops[0]['crop_size'] = (h, w)
    train_ds = dict(pipeline=pipeline)
    if args.data_root:
        train_ds['data_root'] = args.data_root
    lines.append(f'train_dataloader = dict(batch_size={args.batch}, dataset={train_ds!r})')
    if args.data_root or args.eval_split == 'test':
        ds = {}
        if args.data_root:
            ds['data_root'] = args.data_root
        if args.eval_split == 'test':
            ds['data_prefix'] = dict(img_path='test', seg_map_path='testannot')
        lines.append(f'val_dataloader = dict(dataset={ds!r})')
    kind = cfg.model.get('type')
    if kind in ('Distiller', 'CohortDistiller'):
        # the crop reaches each trained network through its own spec's preprocessor
        cohort = kind == 'CohortDistiller'
        nets = cfg.model.members if cohort else dict(student=cfg.model.student)
        specs = {}
        for key, net in nets.items():
            if isinstance(net, dict) and 'config' not in net:  # a model dict: merged into
                specs[key] = dict(data_preprocessor=dict(size=(h, w)))
            else:  # a config path or spec: through its cfg_options
                spec = dict(net) if isinstance(net, dict) else dict(config=net)
                cfg_opts = dict(spec.get('cfg_options') or {})
                cfg_opts['model.data_preprocessor.size'] = (h, w)
                specs[key] = dict(spec, cfg_options=cfg_opts, _delete_=True)
        model = dict(members=specs) if cohort else specs
        teacher = {}
        if args.teacher_config:
            teacher['config'] = args.teacher_config
        if args.teacher_ckpt:
            teacher['checkpoint'] = args.teacher_ckpt
        if teacher:
            if cfg.model.get('teacher') is None:
                raise ValueError(f'{cfg_path} has no frozen teacher (online or self '
                                 'distillation); --teacher-config / --teacher-ckpt do not apply '
                                 'to it.')
            model['teacher'] = teacher
        lines.append(f'model = {model!r}')
        # the Runner injects the config's top-level data_preprocessor into the model when the
        # model dict has none (a Distiller's defaults to its student's): keep both in step
        if cfg.get('data_preprocessor') is not None:
            lines.append(f'data_preprocessor = dict(size=({h}, {w}))')
    else:
        lines.append(f'model = dict(data_preprocessor=dict(size=({h}, {w})))')
    os.makedirs(work_dir, exist_ok=True)
    out = osp.join(work_dir, 'bench_config.py')
    with open(out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return out


def train_command(bench_cfg: str, work_dir: str, args) -> list:
    """The ``tools/train.py`` command of one run (``--resume`` when it has a checkpoint).

    Returns:
        list: argv.
    """
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), bench_cfg, '--work-dir', work_dir]
    if args.cfg_options:
        cmd += ['--cfg-options', *args.cfg_options]
    if osp.isdir(work_dir) and glob.glob(osp.join(work_dir, 'iter_*.pth')):
        cmd.append('--resume')
    return cmd


def last_val(work_dir: str) -> dict:
    """Last validation metrics and the median training iteration time, from the run's
    ``scalars.json`` read into pandas (:func:`rtkd.visualization.run_logs.load_run`)."""
    try:
        run = load_run(work_dir)
    except FileNotFoundError:
        return dict(s_per_iter=float('nan'))
    metrics = dict(run.val[-1]) if run.val else {}
    _, times = run.series('time')
    metrics['s_per_iter'] = float(np.median(times)) if times else float('nan')
    return metrics


def trivial_miou(data_root: str | None, split: str) -> float:
    """mIoU (%) of predicting the most frequent training class everywhere on ``split``."""
    import cv2

    from rtkd.datasets.camvid import resolve_camvid_root
    root = resolve_camvid_root(data_root)
    counts = np.zeros(12, np.int64)
    for f in glob.glob(osp.join(root, 'trainannot', '*.png')):
        counts += np.bincount(cv2.imread(f, cv2.IMREAD_UNCHANGED).ravel(), minlength=12)[:12]
    top = int(np.argmax(counts[:11]))
    inter = union = 0
    for f in glob.glob(osp.join(root, split + 'annot', '*.png')):
        lab = cv2.imread(f, cv2.IMREAD_UNCHANGED)
        valid = lab != 11
        inter += int(((lab == top) & valid).sum())
        union += int(valid.sum())
    # classes other than `top` have IoU 0 (never predicted; all present in CamVid val/test)
    return 100.0 * (inter / union) / 11


def main():
    args = parse_args()
    names = args.names or [osp.splitext(osp.basename(c))[0] for c in args.configs]
    if len(names) != len(args.configs):
        sys.exit('--names must give one name per config')
    os.makedirs(args.work_dir, exist_ok=True)
    env = dict(os.environ)
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    rows = []
    for name, cfg in zip(names, args.configs):
        wd = osp.join(args.work_dir, name)
        ckpt = osp.join(wd, f'iter_{args.iters}.pth')
        t0 = time.time()
        if not (args.skip_existing and osp.isfile(ckpt)):
            bench_cfg = write_bench_config(cfg, wd, args)
            cmd = train_command(bench_cfg, wd, args)
            print(
                f'[learning] {name}: training {args.iters} iters (full log: '
                f'{args.work_dir}/{name}.out)',
                flush=True)
            rc = run_with_progress(
                cmd, env, osp.join(args.work_dir, f'{name}.out'), name, cwd=ROOT, tag='learning')
            if rc.returncode != 0:
                print(f'[learning] {name}: FAILED (see {args.work_dir}/{name}.out)', flush=True)
                rows.append(dict(name=name, config=cfg, mIoU=float('nan')))
                continue
        m = last_val(wd)
        rows.append(
            dict(
                name=name,
                config=cfg,
                iters=args.iters,
                mIoU=m.get('mIoU', float('nan')),
                aAcc=m.get('aAcc', float('nan')),
                s_per_iter=m['s_per_iter'],
                wall_min=(time.time() - t0) / 60))
        print(f'[learning] {name}: mIoU {rows[-1]["mIoU"]}', flush=True)
    triv = trivial_miou(args.data_root, args.eval_split)
    h, w = args.crop
    import pandas as pd
    df = pd.DataFrame(rows)
    table = pd.DataFrame({
        'run': df['name'],
        'config': [f'`{c}`' for c in df['config']],
        'mIoU': df['mIoU'],
        'aAcc': df.get('aAcc', float('nan')),
        's/iter (median)': df.get('s_per_iter', float('nan'))
    })
    text = (
        f'CamVid {args.eval_split} mIoU after {args.iters} iterations, batch {args.batch}, '
        f'{h}x{w} training crops, evaluation at 360x480 '
        f'(trivial predictor: {triv:.2f} mIoU)' +
        (f'; every run with --cfg-options {" ".join(args.cfg_options)}' if args.cfg_options else '')
        + '\n\n' + table.to_markdown(index=False, floatfmt='.2f'))  # tabulate
    print(text)
    with open(osp.join(args.work_dir, 'learning.md'), 'w') as f:
        f.write(text + '\n')
    df[sorted(df.columns)].to_csv(osp.join(args.work_dir, 'learning.csv'), index=False)
    failed = [r['name'] for r in rows if r.get('iters') is None]
    if failed:
        sys.exit(f'[learning] failed runs: {", ".join(failed)} (logs: {args.work_dir}/<name>.out)')


if __name__ == '__main__':
    main()
