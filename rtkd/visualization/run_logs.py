"""Read what an mmengine run left in its work dir: scalar logs, the last per-class IoU table.

An mmengine ``Runner`` writes, for every launch, a folder ``<work_dir>/<YYYYmmdd_HHMMSS>/`` with

* ``vis_data/scalars.json`` (``LocalVisBackend``): one JSON object per line. Training lines hold
  ``step``, ``loss``, every logged loss (``decode.loss_ce``, ``aux_0.loss_ce``, ``loss_cwd``, ...),
  ``lr``, ``time``; validation lines hold the evaluator's metrics (``mIoU``, ``aAcc``, ``mAcc``).
* ``<timestamp>.log``: the text log; mmseg's ``IoUMetric`` prints a per-class table after
  ``per class results:`` at every evaluation.

Resumed runs add a new timestamp folder; :func:`load_run` merges them in time order (a later
line for the same step replaces an earlier one). Folders of test-only launches (``mim test``
writes no ``scalars.json``) are skipped, so a test-split table never replaces the validation one. Works the same for plain mmseg runs and for
distillation runs, because both are ordinary mmengine runs.
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

#: Loss names that come from a distillation loss rather than the segmentation task. Used when a
#: loss key does not say it explicitly (``distill.``/``kd`` prefixes); override per call.
DISTILL_PATTERN = (r'(^|[._])(distill|kd|cwd|kl|skd|pixel|pair|pairwise|holistic|nfd|ofd|fgfi|'
                   r'at|attention|fitnet|hint|feat|feature|logit|logits|response|channel|adv|'
                   r'gan)([._]|$)')

_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
_METRIC_KEYS = ('mIoU', 'aAcc', 'mAcc', 'mDice', 'mFscore', 'coco/bbox_mAP',
                'accuracy/top1', 'bbox_mAP', 'mAP')


@dataclass
class RunLog:
    """Everything read from one work dir.

    Attributes:
        work_dir (str): the folder.
        name (str): display name (the folder's base name unless given).
        train (list[dict]): training scalar lines (those with a ``loss`` key), sorted by step.
        val (list[dict]): evaluation scalar lines (those with a metric key), sorted by step.
        class_table (dict[str, dict[str, float]]): class name -> {``IoU``, ``Acc``, ...} from the
            last per-class table in the text logs (empty when none was printed).
        config_names (list[str]): base names (no ``.py``) of configs dumped in the work dir,
            plus the student config's for a distillation run.
        distill_losses (list[str]): loss names declared by a distiller config dumped in the
            work dir (``model.losses`` keys); empty for plain runs.
    """

    work_dir: str
    name: str
    train: List[dict] = field(default_factory=list)
    val: List[dict] = field(default_factory=list)
    class_table: Dict[str, Dict[str, float]] = field(default_factory=dict)
    config_names: List[str] = field(default_factory=list)
    distill_losses: List[str] = field(default_factory=list)

    def loss_keys(self) -> List[str]:
        """All loss keys logged during training (``loss`` itself first), in first-seen order."""
        keys: List[str] = []
        for line in self.train:
            for k in line:
                if 'loss' in k and k not in keys:
                    keys.append(k)
        return sorted(keys, key=lambda k: k != 'loss')

    def split_losses(self, distill_pattern: str = DISTILL_PATTERN) -> tuple:
        """Split the loss keys into task losses and distillation losses.

        A key is a distillation loss when a dumped distiller config declares it (``losses``)
        or when it matches ``distill_pattern``.

        Args:
            distill_pattern (str): regular expression (searched, case-insensitive) that marks
                a loss key as a distillation loss. The total ``loss`` is in neither list.

        Returns:
            tuple[list[str], list[str]]: ``(task_keys, distill_keys)``.
        """
        task, distill = [], []
        declared = set(self.distill_losses)
        for k in self.loss_keys():
            if k == 'loss':
                continue
            is_kd = (k in declared or k.rsplit('.', 1)[-1] in declared
                     or re.search(distill_pattern, k, re.IGNORECASE))
            (distill if is_kd else task).append(k)
        return task, distill

    def series(self, key: str, source: str = 'train') -> tuple:
        """Steps and values of one scalar.

        Args:
            key (str): scalar name.
            source (str): ``'train'`` or ``'val'``.

        Returns:
            tuple[list[int], list[float]]: steps and values where the key was logged.
        """
        lines = self.train if source == 'train' else self.val
        steps, values = [], []
        for line in lines:
            v = line.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                steps.append(int(line['step']))
                values.append(float(v))
        return steps, values

    def final_metrics(self) -> Dict[str, float]:
        """The last evaluation line's metrics (no timing keys) plus ``best_mIoU`` if present."""
        if not self.val:
            return {}
        last = {k: v for k, v in self.val[-1].items()
                if k not in ('step', 'data_time', 'time') and isinstance(v, (int, float))}
        _, miou = self.series('mIoU', 'val')
        if miou:
            last['best_mIoU'] = max(miou)
        return last


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


def parse_class_table(text: str) -> Dict[str, Dict[str, float]]:
    """Parse the last ``per class results:`` table mmseg's ``IoUMetric`` printed into a log.

    Args:
        text (str): content of a ``<timestamp>.log`` file.

    Returns:
        dict[str, dict[str, float]]: class name -> column name -> value (e.g. ``IoU``, ``Acc``);
        empty when the log holds no such table. ``nan`` entries (class absent) are kept as nan.
    """
    pos = text.rfind('per class results:')
    if pos < 0:
        return {}
    rows = []
    for line in text[pos:].splitlines()[1:]:
        s = line.strip()
        if not s:
            if rows:
                break
            continue
        if s.startswith('+'):
            continue
        if s.startswith('|'):
            rows.append([c.strip() for c in s.strip('|').split('|')])
        elif rows or ' - ' in s:  # next log line (timestamp prefix) ends the table
            if rows:
                break
    if len(rows) < 2:
        return {}
    header, table = rows[0], {}
    for row in rows[1:]:
        if len(row) != len(header):
            continue
        vals = {}
        for col, cell in zip(header[1:], row[1:]):
            try:
                vals[col] = float(cell)
            except ValueError:
                vals[col] = float('nan')
        table[row[0]] = vals
    return table


def load_run(work_dir: str, name: Optional[str] = None) -> RunLog:
    """Read an mmengine work dir (all its timestamp folders, oldest first).

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
    stamps = sorted(d for d in glob.glob(osp.join(wd, '*'))
                    if osp.isdir(d) and _TIMESTAMP.match(osp.basename(d)))
    by_step_train: Dict[int, dict] = {}
    by_step_val: Dict[int, dict] = {}
    class_table: Dict[str, Dict[str, float]] = {}
    for d in stamps:
        stamp = osp.basename(d)
        scal = osp.join(d, 'vis_data', 'scalars.json')
        if not osp.isfile(scal):
            scal = osp.join(d, 'vis_data', f'{stamp}.json')
        if osp.isfile(scal):
            for line in _read_json_lines(scal):
                step = int(line['step'])
                if any(k in line for k in _METRIC_KEYS) and 'loss' not in line:
                    by_step_val[step] = line
                elif 'loss' in line or any('loss' in k for k in line):
                    by_step_train[step] = line
        log = osp.join(d, f'{stamp}.log')
        if osp.isfile(scal) and osp.isfile(log):  # a training launch (test-only ones are skipped)
            with open(log, encoding='utf-8', errors='replace') as f:
                table = parse_class_table(f.read())
            if table:
                class_table = table
    if not by_step_train and not by_step_val:
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
    return RunLog(work_dir=wd, name=name or osp.basename(wd.rstrip('/')),
                  train=[by_step_train[s] for s in sorted(by_step_train)],
                  val=[by_step_val[s] for s in sorted(by_step_val)],
                  class_table=class_table, config_names=configs, distill_losses=distill_losses)


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
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = reader.fieldnames or []
    if not any(h.strip().lower() == 'config' for h in header):
        raise ValueError(f'stats CSV {path!r} has no "config" column (found {header}); it must '
                         'name the config each row measures.')
    return [{k.strip(): (v or '').strip() for k, v in r.items() if k} for r in rows]


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
