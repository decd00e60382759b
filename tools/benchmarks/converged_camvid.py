"""Converged CamVid benchmark: runs x seeds, val curves, ``mim test`` test mIoU, mean +- std.

Each run is a complete config (a student alone or a distillation recipe) with its own budget;
every (run, seed) trains in ``<work-dir>/<name>_seed<seed>`` with ``randomness.seed=<seed>``
(``--resume`` from its latest checkpoint when one is there, so an interrupted matrix continues
where it stopped), then its final checkpoint is tested on the CamVid **test** split with
``mim test mmseg`` (``tools/test.py`` when mim is missing). The report (``--report-only`` skips
training) reads mmengine's ``scalars.json`` (val mIoU every ``val_interval``) and the test metrics
JSON, and writes ``converged.md`` / ``converged.csv`` (per seed and mean +- std) and
``curves.png`` (val mIoU against iterations, every seed thin, the mean thick) into the work dir,
or into ``--report-dir`` (e.g. to report on the archive in the repository without writing there).

``--archive DIR`` copies the evidence of every finished (run, seed) -- its ``scalars.json`` files,
its dumped config and its test metrics JSON, in the same work-dir layout, a few tens of kB, no
checkpoint (:func:`rtkd.visualization.run_logs.archive_run`) -- into ``DIR/<name>_seed<seed>``,
so the table survives the loss of ``work_dirs`` and ``--report-only --work-dir DIR`` rebuilds it
from a checkout. Each training launch appends the machine it ran on (CPU model, cores, threads,
torch) to ``<run>/host.json``, archived too and shown in the report: on a CPU the same seed gives
another result on another CPU model, so runs of different hosts are told apart.

``--parallel N`` trains N (run, seed) pairs at a time with ``cores // N`` threads each (unless
``--threads`` is given): on a 2-core CPU two 1-thread runs train ~1.36x as many iterations per
hour as one 2-thread run (measured with the 6k Fast-SCNN config: 1.25 s/iteration each vs 0.85 s).
A run that fails does not stop the others; the command exits non-zero naming it at the end::

    python tools/benchmarks/converged_camvid.py --work-dir work_dirs/converged --seeds 0 1 2 \\
        --run fast-scnn_6k=configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py \\
        --run cwd_6k=configs/distill/seg/cwd/\
cwd_logits_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320_geo-cache.py
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rtkd.analysis.progress import run_with_progress
from rtkd.utils import atomic_write_bytes, cpu_name
from rtkd.visualization.run_logs import archive_run, load_run, read_test_metrics

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        '--run',
        action='append',
        required=True,
        metavar='NAME=CONFIG',
        help='a run: name and config (repeat)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--work-dir', default='work_dirs/converged')
    p.add_argument('--report-only', action='store_true', help='no training / testing')
    p.add_argument(
        '--report-dir',
        default=None,
        metavar='DIR',
        help='where converged.md / .csv / curves.png go (default: the work dir)')
    p.add_argument('--threads', type=int, default=None, help='OMP_NUM_THREADS of the runs')
    p.add_argument(
        '--parallel',
        type=int,
        default=1,
        metavar='N',
        help='train N (run, seed) pairs at a time (threads: cores // N unless --threads)')
    p.add_argument('--cfg-options', nargs='+', default=[], help='passed to every training run')
    p.add_argument(
        '--archive',
        default=None,
        metavar='DIR',
        help='copy each finished run\'s scalars, config and test metrics into DIR/<name>_seed<s>')
    return p.parse_args(argv)


def val_curve(wd: str) -> dict:
    """iteration -> val mIoU from every ``scalars.json`` of a work dir (resumed runs included)."""
    try:
        steps, values = load_run(wd).series('mIoU', 'val')
    except FileNotFoundError:  # not started yet
        return {}
    return dict(zip(steps, values))


def test_miou(wd: str):
    """mIoU of the latest ``mim test`` in ``<wd>/test`` (mmengine's metrics JSON), or None."""
    rec = read_test_metrics(osp.join(wd, 'test'))
    return None if rec is None else float(rec['mIoU'])


def max_iters(cfg_path: str) -> int:
    from mmengine.config import Config
    return int(Config.fromfile(cfg_path).train_cfg.max_iters)


def run_dir(folder: str, name: str, seed: int) -> str:
    """The folder of one (run, seed) below a work dir or an archive."""
    return osp.join(folder, f'{name}_seed{seed}')


class RunFailed(RuntimeError):
    """A training or test launch of one (run, seed) ended with an error."""


def read_hosts(wd: str) -> list:
    """The launches recorded in ``<wd>/host.json`` (oldest first; [] when none)."""
    try:
        with open(osp.join(wd, 'host.json')) as f:
            return json.load(f)
    except FileNotFoundError:
        return []


def record_host(wd: str, env: dict, start_iter: int) -> dict:
    """Append this machine to ``<wd>/host.json`` (atomically) before a training launch.

    Args:
        wd (str): the run's work dir.
        env (dict): the launch's environment (``OMP_NUM_THREADS``).
        start_iter (int): iteration the launch starts from (0, or the checkpoint it resumes).

    Returns:
        dict: the record appended.
    """
    import torch
    rec = dict(
        start_iter=start_iter,
        cpu=cpu_name(),
        logical_cpus=os.cpu_count(),
        threads=int(env.get('OMP_NUM_THREADS') or torch.get_num_threads()),
        torch=torch.__version__,
        utc=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    data = json.dumps(read_hosts(wd) + [rec], indent=1).encode()
    atomic_write_bytes(osp.join(wd, 'host.json'), lambda f: f.write(data))
    return rec


def latest_iter(wd: str) -> int:
    """Iteration of the newest ``iter_*.pth`` in a work dir (0 when there is none)."""
    its = [
        int(m[1]) for p in glob.glob(osp.join(wd, 'iter_*.pth'))
        if (m := re.search(r'iter_(\d+)\.pth$', p))
    ]
    return max(its, default=0)


def train_and_test(name: str, cfg: str, seed: int, args, env: dict) -> None:
    wd = run_dir(args.work_dir, name, seed)
    it = max_iters(cfg)
    final = osp.join(wd, f'iter_{it}.pth')
    if not osp.isfile(final):
        cmd = [
            sys.executable,
            osp.join(ROOT, 'tools', 'train.py'), cfg, '--work-dir', wd, '--cfg-options',
            f'randomness.seed={seed}', *args.cfg_options
        ]
        start = latest_iter(wd)
        if start:
            cmd.append('--resume')
        os.makedirs(wd, exist_ok=True)
        record_host(wd, env, start)
        rc = run_with_progress(
            cmd, env, osp.join(wd, 'train.out'), f'{name} seed {seed}', cwd=ROOT, tag='converged')
        if rc.returncode != 0:
            raise RunFailed(f'[converged] {name} seed {seed} failed: see {wd}/train.out')
    if test_miou(wd) is None:
        mim = shutil.which('mim')
        cmd = ([mim, 'test', 'mmseg']
               if mim else [sys.executable, osp.join(ROOT, 'tools', 'test.py')])
        cmd += [cfg, '--checkpoint', final, '--work-dir', osp.join(wd, 'test')]
        print(
            f'[converged] {name} seed {seed}: {" ".join(cmd[:3])} on the CamVid test split',
            flush=True)
        rc = run_with_progress(
            cmd, env, osp.join(wd, 'test.out'), f'{name} seed {seed}', cwd=ROOT, tag='test')
        if rc.returncode != 0 or test_miou(wd) is None:
            raise RunFailed(f'[converged] testing {name} seed {seed} failed: see {wd}/test.out')


def run_jobs(jobs: list, fn, parallel: int = 1) -> list:
    """Call ``fn(job)`` for every job, ``parallel`` at a time, in the order given.

    A job that raises does not stop the others (they are independent trainings).

    Args:
        jobs (list): the jobs, e.g. ``(name, config, seed)`` tuples.
        fn (callable): runs one job.
        parallel (int): how many run at once.

    Returns:
        list: ``(job, exception)`` of every job that failed, in the order given.
    """

    def guarded(job):  # a failure is shown when it happens, and the matrix goes on
        try:
            fn(job)
        except Exception as e:  # noqa: B902
            print(e, flush=True)
            raise

    # one worker runs the jobs one after the other, in the order given
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [(job, pool.submit(guarded, job)) for job in jobs]
    failed = [(job, f.exception()) for job, f in futures if f.exception() is not None]
    return failed


def report(runs, seeds, work_dir: str, out_dir: str = None) -> str:
    """Report the (run, seed) folders of ``work_dir``.

    Args:
        runs (list): ``(name, config)`` pairs.
        seeds (list): seeds to look for.
        work_dir (str): folder of the ``<name>_seed<seed>`` run folders (a work dir or an archive).
        out_dir (str, optional): where ``converged.md`` / ``converged.csv`` / ``curves.png`` are
            written (created); default ``work_dir``.

    Returns:
        str: the markdown of ``converged.md``.
    """
    import pandas as pd
    out_dir = out_dir or work_dir
    rows, curves = [], {}
    for name, cfg in runs:
        for s in seeds:
            wd = run_dir(work_dir, name, s)
            c = val_curve(wd)
            if not c:
                continue
            curves.setdefault(name, {})[s] = c
            last = max(c)
            best = max(c, key=c.get)
            rows.append(
                dict(
                    run=name,
                    seed=s,
                    config=cfg,
                    iters=last,
                    val_mIoU_final=c[last],
                    val_mIoU_best=c[best],
                    best_iter=best,
                    test_mIoU=test_miou(wd),
                    host=' + '.join(dict.fromkeys(h['cpu'] for h in read_hosts(wd)))
                    or 'not recorded'))
    if not rows:
        return 'no runs with validation results yet'
    df = pd.DataFrame(rows)
    csv = df.to_csv(index=False).encode()
    atomic_write_bytes(osp.join(out_dir, 'converged.csv'), lambda f: f.write(csv))
    agg = df.groupby(
        'run', sort=False).agg(
            seeds=('seed', 'count'),
            iters=('iters', 'max'),
            val_mean=('val_mIoU_final', 'mean'),
            val_std=('val_mIoU_final', 'std'),
            test_mean=('test_mIoU', 'mean'),
            test_std=('test_mIoU', 'std'))
    lines = [
        '| run | seeds | iters | val mIoU (final) | test mIoU (mim test) |', '|---|---|---|---|---|'
    ]
    for name, r in agg.iterrows():

        def pm(mean, std):  # one seed: no spread to show
            return 'n/a' if np.isnan(mean) else (
                f'{mean:.2f}' if np.isnan(std) else f'{mean:.2f} +- {std:.2f}')

        val, test = pm(r.val_mean, r.val_std), pm(r.test_mean, r.test_std)
        lines.append(f'| {name} | {int(r.seeds)} | {int(r.iters)} | {val} | {test} |')
    lines += [
        '', '| run | seed | val mIoU final | best (iter) | test mIoU | host |',
        '|---|---|---|---|---|---|'
    ]
    for r in rows:
        t = 'n/a' if r['test_mIoU'] is None else f"{r['test_mIoU']:.2f}"
        lines.append(f"| {r['run']} | {r['seed']} | {r['val_mIoU_final']:.2f} | "
                     f"{r['val_mIoU_best']:.2f} ({r['best_iter']}) | {t} | {r['host']} |")
    lines += ['', 'val mIoU every validation (iteration: mIoU):', '']
    for name, per_seed in curves.items():
        for s, c in per_seed.items():
            lines.append(f'- {name} seed {s}: ' + ', '.join(f'{k}: {v:.2f}' for k, v in c.items()))
    md = '\n'.join(lines) + '\n'
    atomic_write_bytes(osp.join(out_dir, 'converged.md'), lambda f: f.write(md.encode()))
    _plot(curves, osp.join(out_dir, 'curves.png'))
    return md


def _plot(curves: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, (name, per_seed) in enumerate(curves.items()):
        color = f'C{k}'
        for c in per_seed.values():
            ax.plot(list(c), list(c.values()), color=color, alpha=0.3, lw=1)
        iters = sorted(set.intersection(*(set(c) for c in per_seed.values())))
        mean = [np.mean([c[i] for c in per_seed.values()]) for i in iters]
        ax.plot(iters, mean, color=color, lw=2.2, label=f'{name} (mean of {len(per_seed)})')
    ax.set_xlabel('iteration')
    ax.set_ylabel('CamVid val mIoU (%)')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write_bytes(path, lambda f: fig.savefig(f, format='png', dpi=110))
    plt.close(fig)


def launch_env(args) -> dict:
    """The environment of the training launches: ``OMP_NUM_THREADS`` from ``--threads``, or
    the cores shared out between ``--parallel`` runs (unset for one run: torch's default)."""
    env = dict(os.environ)
    shared = max(1, (os.cpu_count() or 1) // args.parallel) if args.parallel > 1 else None
    threads = args.threads or shared
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    return env


def main(argv=None) -> None:
    args = parse_args(argv)
    runs = []
    for spec in args.run:
        name, sep, cfg = spec.partition('=')
        if not sep or not osp.isfile(osp.join(ROOT, cfg) if not osp.isabs(cfg) else cfg):
            raise SystemExit(f'--run {spec!r}: write NAME=CONFIG with an existing config file.')
        runs.append((name, cfg))
    os.makedirs(args.work_dir, exist_ok=True)
    env = launch_env(args)
    failed = []
    if not args.report_only:

        def one(job):
            name, cfg, s = job
            train_and_test(name, cfg, s, args, env)
            if args.archive:
                dest = run_dir(args.archive, name, s)
                n = len(archive_run(run_dir(args.work_dir, name, s), dest))
                print(f'[converged] {name} seed {s}: {n} files archived in {dest}', flush=True)

        # seed-major: every run gets seed 0 before any gets seed 1
        jobs = [(name, cfg, s) for s in args.seeds for name, cfg in runs]
        failed = run_jobs(jobs, one, args.parallel)
    print(report(runs, args.seeds, args.work_dir, args.report_dir))
    if failed:
        names = ', '.join(f'{n} seed {s}' for (n, _, s), _ in failed)
        raise SystemExit(f'[converged] failed: {names}')


if __name__ == '__main__':
    main()
