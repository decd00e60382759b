"""Read what an mmengine run left in its work dir into pandas: scalars, per-class metrics.

An mmengine ``Runner`` writes, for every launch, a folder ``<work_dir>/<YYYYmmdd_HHMMSS>/`` with

* ``vis_data/scalars.json`` (``LocalVisBackend``): one JSON object per line. Training lines hold
  ``step``, ``loss``, every logged loss (``decode.loss_ce``, ``aux_0.loss_ce``, ``loss_cwd``, ...),
  ``lr``, ``time``; validation lines hold the evaluator's metrics (``mIoU``, ``aAcc``, ``mAcc``)
  and, with :class:`rtkd.evaluation.PerClassIoUMetric` (the CamVid dataset base's evaluator),
  one scalar per class: ``IoU.<class>``, ``Acc.<class>``.
* for a test launch (``mim test``): ``<timestamp>.json``, the test metrics as one JSON object
  (:func:`read_test_metrics`); such launches write no ``scalars.json``.

:func:`load_run` reads every ``scalars.json`` of a work dir (resumed runs add a timestamp folder;
a later line for the same step replaces an earlier one) into two DataFrames, ``train_df`` and
``val_df`` (one row per step). Nothing is parsed from the text logs. Works the same for plain
mmseg runs and for distillation runs, because both are ordinary mmengine runs.
"""
from __future__ import annotations

import glob
import json
import math
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import pandas as pd

#: Fallback for work dirs without a dumped config (e.g. copied ``scalars.json`` files): loss
#: names that look like distillation losses. A work dir with a dumped config is split by what
#: that config declares (a distiller's ``model.losses`` keys), never by this pattern.
DISTILL_PATTERN = (r'(^|[._])(distill|kd|cwd|kl|skd|pixel|pair|pairwise|holistic|nfd|ofd|fgfi|'
                   r'at|attention|fitnet|hint|feat|feature|logit|logits|response|channel|adv|'
                   r'gan)([._]|$)')

_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
_METRIC_KEYS = ('mIoU', 'aAcc', 'mAcc', 'mDice', 'mFscore', 'coco/bbox_mAP', 'accuracy/top1',
                'bbox_mAP', 'mAP')
#: per-class columns :class:`rtkd.evaluation.PerClassIoUMetric` can log (``<column>.<class>``)
CLASS_COLUMNS = ('IoU', 'Acc', 'Dice', 'Fscore', 'Precision', 'Recall')
_TIMING = ('step', 'data_time', 'time')


def _records(df: pd.DataFrame) -> List[dict]:
    """Rows of a scalars frame as dicts, without the cells a line did not log."""
    out = []
    for rec in df.to_dict('records'):
        row = {
            k: v
            for k, v in rec.items() if not (isinstance(v, float) and math.isnan(v) and k != 'step')
        }
        row['step'] = int(row['step'])
        out.append(row)
    return out


@dataclass
class RunLog:
    """Everything read from one work dir.

    Attributes:
        work_dir (str): the folder.
        name (str): display name (the folder's base name unless given).
        train_df (pd.DataFrame): training scalar lines (those with a loss), one row per step,
            sorted by step; a column per logged scalar.
        val_df (pd.DataFrame): evaluation scalar lines (those with a metric), likewise.
        config_names (list[str]): base names (no ``.py``) of configs dumped in the work dir,
            plus the student config's for a distillation run.
        distill_losses (list[str]): loss names declared by a distiller config dumped in the
            work dir (``model.losses`` keys); empty for plain runs.
    """

    work_dir: str
    name: str
    train_df: pd.DataFrame = field(default_factory=pd.DataFrame)
    val_df: pd.DataFrame = field(default_factory=pd.DataFrame)
    config_names: List[str] = field(default_factory=list)
    distill_losses: List[str] = field(default_factory=list)

    @property
    def train(self) -> List[dict]:
        """Training lines as dicts (only the keys each line logged), sorted by step."""
        return _records(self.train_df)

    @property
    def val(self) -> List[dict]:
        """Evaluation lines as dicts, sorted by step."""
        return _records(self.val_df)

    def last_step(self) -> int:
        """The last step logged (training or validation), 0 when nothing was."""
        steps = [int(df['step'].max()) for df in (self.train_df, self.val_df) if len(df)]
        return max(steps, default=0)

    def loss_keys(self) -> List[str]:
        """All loss keys logged during training (``loss`` itself first), in first-seen order."""
        keys = [k for k in self.train_df.columns if 'loss' in k]
        return sorted(keys, key=lambda k: k != 'loss')

    def split_losses(self, distill_pattern: str = DISTILL_PATTERN) -> tuple:
        """Split the loss keys into task losses and distillation losses.

        A key is a distillation loss when a dumped distiller config declares it
        (``model.losses``). Only a work dir without any dumped config falls back to
        ``distill_pattern``.

        Args:
            distill_pattern (str): regular expression (searched, case-insensitive) that marks
                a loss key as a distillation loss when no config says. The total ``loss`` is
                in neither list.

        Returns:
            tuple[list[str], list[str]]: ``(task_keys, distill_keys)``.
        """
        task, distill = [], []
        declared = set(self.distill_losses)
        for k in self.loss_keys():
            if k == 'loss':
                continue
            if self.config_names:
                is_kd = k in declared or k.rsplit('.', 1)[-1] in declared
            else:
                is_kd = bool(re.search(distill_pattern, k, re.IGNORECASE))
            (distill if is_kd else task).append(k)
        return task, distill

    def series(self, key: str, source: str = 'train') -> tuple:
        """Steps and values of one scalar.

        Args:
            key (str): scalar name.
            source (str): ``'train'`` or ``'val'``.

        Returns:
            tuple[list[int], list[float]]: steps and values where the key was logged (finite).
        """
        df = self.train_df if source == 'train' else self.val_df
        if key not in df.columns:
            return [], []
        col = pd.to_numeric(df[key], errors='coerce').astype(float)
        keep = col.map(math.isfinite)
        return [int(s) for s in df.loc[keep, 'step']], [float(v) for v in col[keep]]

    def final_metrics(self) -> Dict[str, float]:
        """The last evaluation line's metrics (no timing keys) plus ``best_mIoU`` if present."""
        if not len(self.val_df):
            return {}
        last = {
            k: v
            for k, v in self.val[-1].items() if k not in _TIMING and isinstance(v, (int, float))
        }
        _, miou = self.series('mIoU', 'val')
        if miou:
            last['best_mIoU'] = max(miou)
        return last

    def class_frame(self) -> pd.DataFrame:
        """Per-class metrics of the last validation that logged them.

        Returns:
            pd.DataFrame: one row per class (index: class names, in logged order), one column
            per logged per-class metric (``IoU``, ``Acc``, ...); empty when no validation
            logged ``<metric>.<class>`` scalars.
        """
        cols = [c for c in self.val_df.columns if c.split('.', 1)[0] in CLASS_COLUMNS and '.' in c]
        if not cols:
            return pd.DataFrame()
        rows = self.val_df[cols].dropna(how='all')
        if not len(rows):
            return pd.DataFrame()
        last = rows.iloc[-1]
        table: Dict[str, Dict[str, float]] = {}
        for c in cols:
            metric, cls = c.split('.', 1)
            table.setdefault(cls, {})[metric] = float(last[c])
        return pd.DataFrame.from_dict(table, orient='index')

    @property
    def class_table(self) -> Dict[str, Dict[str, float]]:
        """:meth:`class_frame` as ``class -> {metric: value}`` (``nan`` for an absent class)."""
        return {cls: dict(row) for cls, row in self.class_frame().iterrows()}


def _read_json_lines(path: str) -> List[dict]:
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a killed run; keep the rest
            if isinstance(obj, dict) and 'step' in obj:
                out.append(obj)
    return out


def _frame(lines: List[dict]) -> pd.DataFrame:
    """One row per step (the last line logged for it), sorted by step."""
    if not lines:
        return pd.DataFrame(columns=['step'])
    df = pd.DataFrame.from_records(lines)
    df['step'] = df['step'].astype(int)
    return df.drop_duplicates('step', keep='last').sort_values('step').reset_index(drop=True)


def _launches(wd: str) -> List[str]:
    return sorted(
        d for d in glob.glob(osp.join(wd, '*'))
        if osp.isdir(d) and _TIMESTAMP.match(osp.basename(d)))


def load_run(work_dir: str, name: Optional[str] = None) -> RunLog:
    """Read an mmengine work dir (all its timestamp folders, oldest first) into pandas.

    Args:
        work_dir (str): the run's ``work_dir``.
        name (str, optional): display name; defaults to the folder's base name.

    Returns:
        RunLog: the merged logs.

    Raises:
        FileNotFoundError: the folder does not exist, or holds no ``<timestamp>/vis_data/
            scalars.json`` with any line (nothing to report).
    """
    wd = osp.abspath(work_dir)
    if not osp.isdir(wd):
        raise FileNotFoundError(f'work dir {wd!r} does not exist; pass the folder a run wrote '
                                'its <timestamp>/ logs into.')
    train_lines: List[dict] = []
    val_lines: List[dict] = []
    for d in _launches(wd):
        scal = osp.join(d, 'vis_data', 'scalars.json')
        if not osp.isfile(scal):
            scal = osp.join(d, 'vis_data', f'{osp.basename(d)}.json')
        if not osp.isfile(scal):
            continue  # a test-only launch
        for line in _read_json_lines(scal):
            if any(k in line for k in _METRIC_KEYS) and 'loss' not in line:
                val_lines.append(line)
            elif any('loss' in k for k in line):
                train_lines.append(line)
    if not train_lines and not val_lines:
        raise FileNotFoundError(
            f'work dir {wd!r} holds no training or validation logs '
            '(<timestamp>/vis_data/scalars.json is missing or empty); point at a folder an '
            'mmengine run has logged into.')
    configs, distill_losses = [], []
    for path in sorted(glob.glob(osp.join(wd, '*.py'))):
        configs.append(osp.splitext(osp.basename(path))[0])
        student, losses = _distiller_info(path)
        if student:
            configs.append(_stem(student))
        distill_losses += [k for k in losses if k not in distill_losses]
    return RunLog(
        work_dir=wd,
        name=name or osp.basename(wd.rstrip('/')),
        train_df=_frame(train_lines),
        val_df=_frame(val_lines),
        config_names=configs,
        distill_losses=distill_losses)


def read_test_metrics(work_dir: str, key: Optional[str] = 'mIoU') -> Optional[dict]:
    """Metrics of the latest test launch in a work dir, from mmengine's JSON output.

    ``mim test`` / ``tools/test.py`` (``Runner.test``) write them as one JSON object into
    ``<work_dir>/<timestamp>/<timestamp>.json`` (``LoggerHook.after_test_epoch``).

    Args:
        work_dir (str): the ``--work-dir`` of the test launch(es).
        key (str, optional): only consider files holding this metric (None: any).

    Returns:
        dict or None: metric name -> value of the newest such file, None when there is none.
    """
    wd = osp.abspath(work_dir)
    for d in reversed(_launches(wd)) if osp.isdir(wd) else []:
        path = osp.join(d, f'{osp.basename(d)}.json')
        if not osp.isfile(path):
            continue
        try:
            with open(path, encoding='utf-8') as f:
                rec = json.load(f)
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and (key is None or key in rec):
            return rec
    return None


def archive_run(work_dir: str, dest: str) -> List[str]:
    """Copy what :func:`load_run` and :func:`read_test_metrics` read from a work dir to ``dest``.

    Keeps the evidence of a finished run (a few tens of kB, no checkpoint) where it outlives
    ``work_dirs``, e.g. in the repository: every ``<timestamp>/vis_data/scalars.json`` (one per
    launch; a resumed run has several), the configs mmengine dumped into the work dir, the
    metrics JSON of test launches in ``test/<timestamp>/`` and ``host.json`` (the machines the
    launches ran on, written by the converged benchmark), in the same layout, so ``dest``
    reads as the work dir does. Each file is written atomically. The dumped configs are made
    portable: folders of this machine in them (the work dir, ``$RTKD_TEACHERS``, the home
    folder) are written as ``work_dirs/<name>``, ``$RTKD_TEACHERS`` and ``~``.

    Args:
        work_dir (str): the run's ``work_dir``.
        dest (str): the archive folder (created; files already there are replaced).

    Returns:
        list[str]: the archived paths, relative to ``dest``.

    Raises:
        FileNotFoundError: ``work_dir`` holds no training or validation logs.
    """
    from rtkd.utils import atomic_write_bytes
    load_run(work_dir)  # fails early, with its message, when there is nothing to keep
    wd = osp.abspath(work_dir)
    pats = ['*/vis_data/scalars.json', '*.py', 'test/*/*.json', 'host.json']
    rels = sorted({osp.relpath(p, wd) for pat in pats for p in glob.glob(osp.join(wd, pat))})
    for rel in rels:
        with open(osp.join(wd, rel), 'rb') as src:
            data = src.read()
        if rel.endswith('.py'):
            data = _portable_config(data.decode('utf-8'), wd).encode('utf-8')
        atomic_write_bytes(osp.join(dest, rel), lambda f: f.write(data))
    return rels


def _portable_config(text: str, work_dir: str) -> str:
    """``text`` with this machine's folders replaced by names that mean the same elsewhere."""
    subs = [(work_dir, f'work_dirs/{osp.basename(work_dir)}')]
    teachers = os.environ.get('RTKD_TEACHERS')
    if teachers:
        subs.append((osp.abspath(osp.expanduser(teachers)), '$RTKD_TEACHERS'))
    subs.append((osp.expanduser('~'), '~'))
    for old, new in sorted(subs, key=lambda s: -len(s[0])):  # the longest folder first
        if len(old) > 1:
            text = text.replace(old, new)
    return text


def _distiller_info(path: str) -> tuple:
    """(student config path or '', declared loss names) of a dumped config; ('', []) for a
    plain model config or a file mmengine cannot parse."""
    try:
        from mmengine.config import Config
        cfg = Config.fromfile(path, import_custom_modules=False)
        model = cfg.get('model') or {}
    except Exception:  # not a config (or unparsable): no distiller information
        return '', []
    if not str(model.get('type', '')).endswith('Distiller'):
        return '', []
    student = model.get('student')
    return (student if isinstance(student, str) else ''), list((model.get('losses') or {}))


def read_stats_csv(path: str) -> List[Dict[str, str]]:
    """Read a model-statistics CSV (e.g. from ``tools/analysis/model_stats.py``).

    Args:
        path (str): CSV file with a header row; a ``config`` column is used to match runs.

    Returns:
        list[dict[str, str]]: the rows.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file has no header or no ``config`` column.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'stats CSV {osp.abspath(path)!r} does not exist; pass the file '
                                'written by tools/analysis/model_stats.py or drop --stats.')
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    header = [str(c) for c in df.columns]
    if not any(h.strip().lower() == 'config' for h in header):
        raise ValueError(f'stats CSV {path!r} has no "config" column (found {header}); it must '
                         'name the config each row measures.')
    df.columns = [h.strip() for h in header]
    return [{k: v.strip() for k, v in r.items() if k} for r in df.to_dict('records')]


def _stem(s: str) -> str:
    return osp.splitext(osp.basename(s.strip().rstrip('/')))[0]


def match_stats(run: RunLog, rows: Sequence[Dict[str, str]]) -> Dict[str, str]:
    """Find the stats row of a run: its ``config`` names a config dumped in the work dir, the
    work dir itself, or the run's display name (compared without folders and ``.py``).

    Args:
        run (RunLog): the run.
        rows (Sequence[dict]): rows from :func:`read_stats_csv`.

    Returns:
        dict[str, str]: the matching row, or an empty dict.
    """
    wanted = {_stem(run.work_dir), run.name, *run.config_names}
    for row in rows:
        cfg = next((v for k, v in row.items() if k.lower() == 'config'), '')
        if cfg and _stem(cfg) in wanted:
            return row
    return {}


def stats_columns(rows: Sequence[Dict[str, str]]) -> List[str]:
    """Columns of a stats CSV worth showing in a report: parameter counts, FLOPs, latency, FPS.

    Args:
        rows (Sequence[dict]): rows from :func:`read_stats_csv`.

    Returns:
        list[str]: matching column names in file order.
    """
    if not rows:
        return []
    pat = re.compile(r'param|flop|latency|fps|time|ms', re.IGNORECASE)
    return [k for k in rows[0] if k.lower() != 'config' and pat.search(k)]
