"""Compare runs (baseline vs distilled) in ONE self-contained HTML page.

Reads each work dir's mmengine logs into pandas (``<timestamp>/vis_data/scalars.json``; the
per-class IoU are the ``IoU.<class>`` scalars :class:`rtkd.evaluation.PerClassIoUMetric` logs at
every validation) and writes training curves of the task and distillation losses (matplotlib),
val mIoU over iterations for all runs, a final-metrics table (with parameters / latency from a
model-stats CSV if given) and a per-class IoU table; ``--markdown`` also writes both tables as
markdown (pandas + tabulate). Works for plain mmseg runs and distiller runs alike. Put the
baseline first: deltas refer to the first run.

Example::

    python tools/analysis/distill_report.py work_dirs/fast_scnn_baseline work_dirs/cwd_fast_scnn \\
        --names baseline CWD --stats stats.csv --out report.html
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from rtkd.visualization.report import build_report, markdown_tables  # noqa: E402
from rtkd.visualization.run_logs import DISTILL_PATTERN, load_run, read_stats_csv  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='HTML report comparing training runs (logs only).')
    p.add_argument('work_dirs', nargs='+', help='work dirs of the runs; baseline first')
    p.add_argument('--out', default='report.html', help='HTML file to write')
    p.add_argument('--names', nargs='+', help='display name per work dir (default: folder names)')
    p.add_argument(
        '--stats',
        help='model-stats CSV (tools/analysis/model_stats.py) with a '
        '"config" column; its parameter/FLOPs/latency columns join the metrics table '
        '(rows are matched to runs by config name; a missing file only warns)')
    p.add_argument('--markdown', help='also write the metrics and per-class tables here (.md)')
    p.add_argument('--title', default='Distillation report', help='page title')
    p.add_argument('--smooth', type=int, default=1, help='moving-average window for losses')
    p.add_argument(
        '--distill-pattern',
        default=DISTILL_PATTERN,
        help='regex marking distillation loss keys (others are task losses)')
    return p.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    if args.names and len(args.names) != len(args.work_dirs):
        raise SystemExit(f'error: --names has {len(args.names)} names for '
                         f'{len(args.work_dirs)} work dirs; give one name per work dir.')
    names = args.names or [None] * len(args.work_dirs)
    try:
        runs = [load_run(d, n) for d, n in zip(args.work_dirs, names)]
    except FileNotFoundError as e:
        raise SystemExit(f'error: {e}')
    stats = []
    if args.stats:  # optional extra: a missing/unusable CSV only drops the stats columns
        try:
            stats = read_stats_csv(args.stats)
        except (FileNotFoundError, ValueError) as e:
            print(f'warning: {e} The report is written without model statistics.', file=sys.stderr)
    page = build_report(
        runs, stats, title=args.title, smooth=args.smooth, distill_pattern=args.distill_pattern)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(page)
    print(f'wrote {osp.abspath(args.out)} ({len(page) // 1024} KiB, {len(runs)} runs)')
    if args.markdown:
        os.makedirs(osp.dirname(osp.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w', encoding='utf-8') as f:
            f.write(markdown_tables(runs, stats))
        print(f'wrote {osp.abspath(args.markdown)}')
    return args.out


if __name__ == '__main__':
    main()
