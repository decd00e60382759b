"""One self-contained HTML page comparing runs: loss curves, val mIoU, final and per-class metrics.

Plots are drawn with matplotlib (Agg backend, no display needed) and embedded as base64 PNGs, so
the page can be mailed or attached to an issue as a single file.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from typing import Dict, List, Optional, Sequence

import pandas as pd

from .run_logs import DISTILL_PATTERN, RunLog, match_stats, stats_columns

_CSS = """
body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee} td.l,th.l{text-align:left}
td.pos{color:#060} td.neg{color:#a00}
img{max-width:100%;border:1px solid #ddd}
.note{color:#555;font-size:13px}
"""


def _mpl():
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt
    return plt


def _fig_to_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100, bbox_inches='tight')
    _mpl().close(fig)
    return base64.b64encode(buf.getvalue()).decode('ascii')


def _smooth(values: Sequence[float], window: int) -> List[float]:
    if window <= 1 or len(values) < 2:
        return list(values)
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def plot_losses(runs: Sequence[RunLog],
                smooth: int = 1,
                distill_pattern: str = DISTILL_PATTERN) -> str:
    """Training curves: one panel per run with its total, task and distillation losses.

    Task losses are solid lines, distillation losses dashed, the total loss black.

    Args:
        runs (Sequence[RunLog]): the runs.
        smooth (int): moving-average window in logged points (1 = raw).
        distill_pattern (str): regex marking distillation loss keys.

    Returns:
        str: base64 PNG.
    """
    plt = _mpl()
    n = len(runs)
    fig, axes = plt.subplots(n, 1, figsize=(9, 3.0 * n), squeeze=False)
    for ax, run in zip(axes[:, 0], runs):
        task, distill = run.split_losses(distill_pattern)
        steps, vals = run.series('loss')
        if steps:
            ax.plot(steps, _smooth(vals, smooth), color='black', lw=1.6, label='loss (total)')
        for k in task:
            s, v = run.series(k)
            ax.plot(s, _smooth(v, smooth), lw=1.2, label=f'{k} (task)')
        handles = list(ax.lines)
        if distill:  # own axis: distillation terms are often on another scale than CE
            ax2 = ax.twinx()
            colors = iter(['tab:red', 'tab:purple', 'tab:brown', 'tab:pink', 'tab:olive'] * 4)
            for k in distill:
                s, v = run.series(k)
                handles += ax2.plot(
                    s,
                    _smooth(v, smooth),
                    lw=1.4,
                    ls='--',
                    color=next(colors),
                    label=f'{k} (distill, right axis)')
            ax2.set_ylabel('distillation loss')
        ax.set_title(
            f'{run.name}: training losses' +
            (f' (moving average of {smooth})' if smooth > 1 else ''),
            fontsize=10)
        ax.set_xlabel('iteration')
        ax.set_ylabel('loss')
        ax.grid(alpha=0.3)
        if handles:
            ax.legend(handles=handles, fontsize=8, loc='upper right')
        else:
            ax.text(0.5, 0.5, 'no training losses logged', ha='center', transform=ax.transAxes)
    fig.tight_layout()
    return _fig_to_b64(fig)


def plot_task_loss_overlay(runs: Sequence[RunLog],
                           smooth: int = 1,
                           distill_pattern: str = DISTILL_PATTERN) -> str:
    """Sum of the task losses per run, all runs on one axis (does distillation help the task?).

    Args:
        runs (Sequence[RunLog]): the runs.
        smooth (int): moving-average window in logged points.
        distill_pattern (str): regex marking distillation loss keys.

    Returns:
        str: base64 PNG.
    """
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for run in runs:
        task, _ = run.split_losses(distill_pattern)
        keys = task or ['loss']
        steps, total = [], []
        for line in run.train:
            vals = [line.get(k) for k in keys]
            if all(isinstance(v, (int, float)) for v in vals):
                steps.append(int(line['step']))
                total.append(float(sum(vals)))
        if steps:
            ax.plot(
                steps,
                _smooth(total, smooth),
                lw=1.4,
                marker='.' if len(steps) < 20 else None,
                label=run.name)
    ax.set_title('task loss (sum of the non-distillation loss terms)', fontsize=10)
    ax.set_xlabel('iteration')
    ax.set_ylabel('task loss')
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _fig_to_b64(fig)


def plot_metric(runs: Sequence[RunLog], key: str = 'mIoU') -> str:
    """Validation metric over iterations, all runs on one axis.

    Args:
        runs (Sequence[RunLog]): the runs.
        key (str): metric name in the scalar logs.

    Returns:
        str: base64 PNG.
    """
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for run in runs:
        s, v = run.series(key, 'val')
        if s:
            ax.plot(s, v, marker='o', ms=4, lw=1.4, label=run.name)
    ax.set_title(f'validation {key}', fontsize=10)
    ax.set_xlabel('iteration')
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f'no validation {key} logged', ha='center', transform=ax.transAxes)
    fig.tight_layout()
    return _fig_to_b64(fig)


def _fmt(v, digits: int = 2) -> str:
    if v is None or v == '':
        return '-'
    if isinstance(v, float):
        return '-' if math.isnan(v) else f'{v:.{digits}f}'
    return html.escape(str(v))


def _delta_cell(d: Optional[float]) -> str:
    if d is None or (isinstance(d, float) and math.isnan(d)):
        return '<td>-</td>'
    cls = 'pos' if d > 0 else 'neg' if d < 0 else ''
    return f'<td class="{cls}">{d:+.2f}</td>'


def _num(v) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _html_table(df: pd.DataFrame,
                table_id: str,
                left: Sequence[str] = (),
                delta: Sequence[str] = (),
                row_class: str = '') -> str:
    """Render a DataFrame as the report's HTML table (left-aligned text columns, green/red
    signed delta columns); ``'ref'`` cells stay text."""
    head = ''.join(f'<th class="l">{html.escape(str(c))}</th>' if c in
                   left else f'<th>{html.escape(str(c))}</th>' for c in df.columns)
    out = [f'<table id="{table_id}"><tr>{head}</tr>']
    tr = f'<tr class="{row_class}">' if row_class else '<tr>'
    for _, row in df.iterrows():
        cells = []
        for c in df.columns:
            v = row[c]
            if c in delta and not isinstance(v, str):
                cells.append(_delta_cell(_num(v)))
            elif c in left:
                cells.append(f'<td class="l">{html.escape(str(v))}</td>')
            else:
                cells.append(f'<td>{_fmt(v)}</td>')
        out.append(tr + ''.join(cells) + '</tr>')
    out.append('</table>')
    return '\n'.join(out)


def metrics_frame(runs: Sequence[RunLog], stats_rows: Sequence[dict] = ()) -> pd.DataFrame:
    """One row per run: final/best mIoU, aAcc, mAcc, delta to the first run, and the matching
    model statistics (parameters, latency, ...) when a stats CSV is given.

    Args:
        runs (Sequence[RunLog]): the runs; the first is the reference for the delta column.
        stats_rows (Sequence[dict]): rows of a model-stats CSV (may be empty).

    Returns:
        pd.DataFrame: columns ``run``, ``work dir``, ``last iter``, ``mIoU (last val)``,
        ``best mIoU``, ``aAcc``, ``mAcc``, ``ΔmIoU vs <first run>`` and the stats columns.
    """
    scols = stats_columns(stats_rows)
    delta = f'ΔmIoU vs {runs[0].name}'
    ref = _num(runs[0].final_metrics().get('mIoU'))
    rows = []
    for run in runs:
        m = run.final_metrics()
        miou = _num(m.get('mIoU'))
        row = {
            'run': run.name,
            'work dir': run.work_dir,
            'last iter': run.last_step(),
            'mIoU (last val)': m.get('mIoU'),
            'best mIoU': m.get('best_mIoU'),
            'aAcc': m.get('aAcc'),
            'mAcc': m.get('mAcc'),
            delta: 'ref' if run is runs[0] else
            (None if miou is None or ref is None else miou - ref)
        }
        stats = match_stats(run, stats_rows) if stats_rows else {}
        row.update({c: stats.get(c) for c in scols})
        rows.append(row)
    return pd.DataFrame(rows, columns=list(rows[0]))


def metrics_table(runs: Sequence[RunLog], stats_rows: Sequence[Dict[str, str]] = ()) -> str:
    """:func:`metrics_frame` as the report's HTML ``<table id="metrics">``."""
    df = metrics_frame(runs, stats_rows)
    return _html_table(df, 'metrics', left=('run', 'work dir'), delta=(df.columns[7], ))


def class_frame(runs: Sequence[RunLog], column: str = 'IoU') -> pd.DataFrame:
    """Per-class ``column`` of every run (its last validation that logged per-class scalars),
    one row per class, plus the difference of the last run to the first.

    Args:
        runs (Sequence[RunLog]): the runs.
        column (str): per-class metric (``IoU`` or ``Acc``, as logged by
            :class:`rtkd.evaluation.PerClassIoUMetric`).

    Returns:
        pd.DataFrame: index = class names; one column per run (+ the delta); empty when no run
        logged per-class scalars.
    """
    cols = {}
    for run in runs:
        f = run.class_frame()
        cols[run.name] = f[column] if column in f.columns else pd.Series(dtype=float)
    df = pd.concat(cols, axis=1, sort=False) if cols else pd.DataFrame()
    if df.empty:
        return df
    if len(runs) > 1:
        df[f'Δ {runs[-1].name} − {runs[0].name}'] = df.iloc[:, -1] - df.iloc[:, 0]
    df.index.name = 'class'
    return df


def class_table(runs: Sequence[RunLog], column: str = 'IoU') -> str:
    """:func:`class_frame` as the report's HTML table, or a note when no run logged
    per-class scalars."""
    df = class_frame(runs, column)
    if df.empty:
        return ('<p class="note">No per-class metrics in the runs\' scalars.json (log them with '
                "val_evaluator = dict(type='PerClassIoUMetric')).</p>")
    delta = [c for c in df.columns if str(c).startswith('Δ ')]
    return _html_table(
        df.reset_index(),
        f'per-class-{column.lower()}',
        left=('class', ),
        delta=delta,
        row_class='cls')


def markdown_tables(runs: Sequence[RunLog], stats_rows: Sequence[Dict[str, str]] = ()) -> str:
    """The metrics and per-class IoU tables as markdown (``DataFrame.to_markdown``, tabulate).

    Args:
        runs (Sequence[RunLog]): the runs; the first is the reference.
        stats_rows (Sequence[dict]): rows of a model-stats CSV (may be empty).

    Returns:
        str: two markdown tables with headings.
    """
    df = metrics_frame(runs, stats_rows).drop(columns=['work dir'])
    delta = df.columns[6]
    df[delta] = [
        v if isinstance(v, str) else '-' if _num(v) is None or math.isnan(v) else f'{v:+.2f}'
        for v in df[delta]
    ]
    parts = ['## Final metrics', '', df.to_markdown(index=False, floatfmt='.2f'), '']
    cls = class_frame(runs, 'IoU')
    if not cls.empty:
        parts += ['## Per-class IoU (last validation)', '', cls.to_markdown(floatfmt='.2f'), '']
    return '\n'.join(parts)


def build_report(runs: Sequence[RunLog],
                 stats_rows: Sequence[Dict[str, str]] = (),
                 title: str = 'Distillation report',
                 smooth: int = 1,
                 distill_pattern: str = DISTILL_PATTERN) -> str:
    """Assemble the whole HTML page.

    Args:
        runs (Sequence[RunLog]): runs to compare; put the baseline first (deltas refer to it).
        stats_rows (Sequence[dict]): rows of a model-stats CSV (optional).
        title (str): page title.
        smooth (int): moving-average window for the loss curves.
        distill_pattern (str): regex marking distillation loss keys.

    Returns:
        str: the HTML document.
    """
    if not runs:
        raise ValueError('build_report needs at least one run.')
    parts = [
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f'</title><style>{_CSS}</style></head><body>', f'<h1>{html.escape(title)}</h1>',
        f'<p class="note">Generated {_dt.datetime.now():%Y-%m-%d %H:%M} from '
        f'{len(runs)} run(s). Deltas refer to the first run ({html.escape(runs[0].name)}).'
        '</p>'
    ]
    lines = []
    for r in runs:
        task, distill = r.split_losses(distill_pattern)
        lines.append(f'<li><b>{html.escape(r.name)}</b>: {html.escape(r.work_dir)} — '
                     'task losses: '
                     f'{html.escape(", ".join(task) or "-")}; distillation losses: '
                     f'{html.escape(", ".join(distill) or "none")}</li>')
    parts.append('<ul>' + ''.join(lines) + '</ul>')
    parts.append('<h2>Final metrics</h2>')
    parts.append(metrics_table(runs, stats_rows))
    parts.append('<h2>Validation mIoU</h2>')
    parts.append(f'<img alt="val mIoU" src="data:image/png;base64,{plot_metric(runs)}">')
    parts.append('<h2>Task loss across runs</h2>')
    parts.append('<img alt="task loss" src="data:image/png;base64,'
                 f'{plot_task_loss_overlay(runs, smooth, distill_pattern)}">')
    parts.append('<h2>Training losses per run</h2>')
    parts.append('<p class="note">solid: task losses and the total (black, left axis); dashed: '
                 'distillation losses (right axis).</p>')
    parts.append('<img alt="training losses" src="data:image/png;base64,'
                 f'{plot_losses(runs, smooth, distill_pattern)}">')
    parts.append('<h2>Per-class IoU (last validation)</h2>')
    parts.append(class_table(runs, 'IoU'))
    parts.append('</body></html>')
    return '\n'.join(parts)
