"""Class weights for a weighted cross-entropy, computed from a config's training labels.

    python tools/dataset_converters/class_weights.py CONFIG [--method enet|espnet|linknet]
        [--c C] [--split train] [--count-ignored] [--decimals 4] [--cfg-options KEY=VALUE ...]

The labels are read exactly as training reads them: the dataset of ``{split}_dataloader`` is
built from the config (its ``data_root``, ``data_prefix``, ``label_map``, ``reduce_zero_label``)
and every label map goes through the ``LoadAnnotations`` of that dataset's pipeline, so e.g.
CamVid's void (11) arrives as 255. With ``h_c`` the number of pixels of class ``c`` over all label
maps (pixels equal to ``--ignore-index`` (255) or outside ``0..num_classes-1`` are not a class):

* ``enet`` (Paszke et al., ENet, arXiv 1606.02147), ``c = 1.02``:
  ``w_c = 1 / ln(c + p_c)``, ``p_c = h_c / sum_k h_k``.
* ``espnet``: the same formula with ``c = 1.10``, the constant of the official ESPNet code
  (github.com/sacmehta/ESPNet, ``train/loadData.py``, ``normVal=1.10``, "as defined in the ERFNet
  paper") and of ERFNet's decoder (github.com/Eromera/erfnet, ``train/model/decoder.lua``).
* ``linknet``: ``w_c = 1 / ln(c + h_c / max_k h_k)``, ``c = 1.02``, the official LinkNet code
  (github.com/e-lab/LinkNet, ``models/model.lua``: ``torch.log(1.02 + hist / hist:max())^-1``).

``--c`` overrides the constant. Ignored pixels are left out of the totals by default. The official
ESPNet and ERFNet code count them (ESPNet maps void to an extra, trained class; ERFNet gives it
weight 0) in ``sum_k h_k``, and LinkNet's histogram has an "Unlabeled" bin that takes part in the
max: ``--count-ignored`` does the same. Other details of those codes are not reproduced: ESPNet's
``np.histogram(label, classes)`` bins each image over its own label range, and LinkNet / ERFNet
count labels resized to 1024x512 (nearest neighbour); here the label files are counted as they
are.

The output is valid Python, ready to paste into a config: the per-class table as comments, then
``class_weight = [...]`` and the time taken.
"""
from __future__ import annotations

import argparse
import copy
import math
import textwrap
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

METHODS: Dict[str, float] = {'enet': 1.02, 'espnet': 1.10, 'linknet': 1.02}
WRAPPER_KEYS = ('dataset', 'datasets')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(
        description='ENet / ESPNet / LinkNet class weights from the labels of a config.')
    p.add_argument('config', help='config whose {split}_dataloader.dataset is counted')
    p.add_argument(
        '--method',
        choices=sorted(METHODS),
        default='enet',
        help='enet: 1/ln(c + p), c=1.02; espnet: the same with c=1.10; '
        'linknet: 1/ln(c + h/max h), c=1.02 (default: enet)')
    p.add_argument(
        '--c',
        type=float,
        default=None,
        help='the constant c (default: 1.02 for enet/linknet, 1.10 for espnet)')
    p.add_argument(
        '--split',
        default='train',
        choices=('train', 'val', 'test'),
        help='which dataloader of the config to count (default: train)')
    p.add_argument(
        '--ignore-index',
        type=int,
        default=255,
        help='label value that is not a class (default: 255)')
    p.add_argument(
        '--count-ignored',
        action='store_true',
        help='count ignored pixels in sum_k h_k (enet/espnet) and in max_k h_k '
        '(linknet), as the official ESPNet / ERFNet / LinkNet code')
    p.add_argument('--decimals', type=int, default=4, help='decimals printed (default: 4)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config keys, e.g. train_dataloader.dataset.data_root=...')
    args = p.parse_args(argv)
    if args.c is not None and args.c <= 1.0:
        p.error(f'--c must be > 1 (ln(c + p) must stay positive), got {args.c}.')
    if args.decimals < 0:
        p.error('--decimals must be >= 0.')
    return args


def class_weights(hist: Sequence[float],
                  method: str,
                  c: Optional[float] = None,
                  ignored: float = 0,
                  count_ignored: bool = False) -> List[float]:
    """Weights from a class histogram.

    Args:
        hist (Sequence[float]): pixels per class ``h_c``.
        method (str): ``'enet'``, ``'espnet'`` or ``'linknet'`` (see the module docstring).
        c (float, optional): the constant; default :data:`METHODS` ``[method]``.
        ignored (float): ignored pixels (used only with ``count_ignored``).
        count_ignored (bool): add ``ignored`` to the total (enet/espnet) or to the candidates of
            the max (linknet).

    Returns:
        list[float]: one weight per class.
    """
    if method not in METHODS:
        raise ValueError(f'unknown method {method!r}; choose from {sorted(METHODS)}.')
    c = METHODS[method] if c is None else float(c)
    h = np.asarray(hist, dtype=np.float64)
    extra = float(ignored) if count_ignored else 0.0
    if method == 'linknet':
        denom = max(float(h.max()), extra)
    else:
        denom = float(h.sum()) + extra
    if denom <= 0:
        raise ValueError('no labelled pixel was counted: check the dataset and --ignore-index.')
    return [1.0 / math.log(c + float(v) / denom) for v in h]


def _leaf_dataset_cfgs(cfg: dict) -> List[dict]:
    """The plain datasets inside dataset wrappers (ConcatDataset, RepeatDataset, ...)."""
    for key in WRAPPER_KEYS:
        inner = cfg.get(key)
        if isinstance(inner, dict):
            return _leaf_dataset_cfgs(inner)
        if isinstance(inner, (list, tuple)):
            return [leaf for sub in inner for leaf in _leaf_dataset_cfgs(sub)]
    return [cfg]


def _load_annotations_cfg(pipeline: Sequence[dict]) -> dict:
    """The dataset pipeline's ``LoadAnnotations`` step (mmseg's default when there is none)."""
    for step in pipeline or []:
        kind = step.get('type')
        name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
        if name.split('.')[-1].endswith('LoadAnnotations'):
            return copy.deepcopy(dict(step))
    return dict(type='LoadAnnotations')


def count_labels(cfg,
                 split: str = 'train',
                 ignore_index: int = 255) -> Tuple[np.ndarray, int, int, int, List[str]]:
    """Count the pixels of every class over the label maps of a config's dataset.

    Args:
        cfg (mmengine.Config): the config (custom imports already done).
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        ignore_index (int): label value that is not a class.

    Returns:
        tuple: ``(hist, ignored, outside, num_maps, classes)``: pixels per class, pixels equal
        to ``ignore_index``, pixels with another value outside the classes, number of label maps
        and the class names.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, TRANSFORMS

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    key = f'{split}_dataloader'
    if not cfg.get(key) or 'dataset' not in cfg[key]:
        raise KeyError(f'the config has no {key}.dataset to count.')
    hist, ignored, outside, num_maps, classes = None, 0, 0, 0, []
    for leaf in _leaf_dataset_cfgs(copy.deepcopy(cfg[key]['dataset'])):
        load = TRANSFORMS.build(_load_annotations_cfg(leaf.get('pipeline')))
        leaf['pipeline'] = []
        dataset = DATASETS.build(leaf)
        classes = list(dataset.metainfo['classes'])
        if hist is None:
            hist = np.zeros(len(classes), dtype=np.int64)
        elif len(classes) != len(hist):
            raise ValueError(f'datasets with different class counts: {len(hist)} and '
                             f'{len(classes)}.')
        if ignore_index < len(classes):
            raise ValueError(f'ignore index {ignore_index} is one of the {len(classes)} classes.')
        for i in range(len(dataset)):
            results = load(dict(copy.deepcopy(dataset.get_data_info(i)), seg_fields=[]))
            seg = np.asarray(results['gt_seg_map']).ravel()
            counts = np.bincount(seg, minlength=ignore_index + 1)
            hist += counts[:len(classes)]
            ignored += int(counts[ignore_index])
            outside += int(counts[len(classes):].sum() - counts[ignore_index])
            num_maps += 1
    if not num_maps:
        raise FileNotFoundError(f'the {split} dataset of the config has no samples.')
    return hist, ignored, outside, num_maps, classes


def format_weights(weights: Sequence[float], decimals: int = 4, width: int = 100) -> str:
    """``class_weight = [...]``, wrapped at ``width`` columns like the project's configs."""
    items = ', '.join(f'{w:.{decimals}f}' for w in weights)
    one_line = f'class_weight = [{items}]'
    if len(one_line) <= width:
        return one_line
    body = textwrap.fill(
        items,
        width=width - 4,
        initial_indent='    ',
        subsequent_indent='    ',
        break_long_words=False)
    return f'class_weight = [\n{body}\n]'


def main(argv: Optional[Sequence[str]] = None) -> List[float]:
    """Run the tool; print the table, the list and the time; return the weights."""
    start = time.perf_counter()
    args = parse_args(argv)
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    counting = time.perf_counter()
    hist, ignored, outside, num_maps, classes = count_labels(cfg, args.split, args.ignore_index)
    counting = time.perf_counter() - counting
    c = METHODS[args.method] if args.c is None else args.c
    weights = class_weights(hist, args.method, c, ignored + outside, args.count_ignored)
    total = int(hist.sum())
    if args.method == 'linknet':
        formula = f'w_c = 1 / ln({c:g} + h_c / max_k h_k)'
    else:
        formula = f'w_c = 1 / ln({c:g} + p_c), p_c = h_c / sum_k h_k'
    counted = ('ignored pixels counted' if args.count_ignored else 'ignored pixels not counted')
    lines = [
        f'# {args.config} ({args.split} split): {num_maps} label maps, {total} pixels of '
        f'{len(classes)} classes, {ignored} ignored ({args.ignore_index})' +
        (f', {outside} with other values outside the classes' if outside else ''),
        f'# method {args.method}: {formula} ({counted})',
        f'# {"class":<16}{"pixels":>12}{"frequency":>12}{"weight":>10}',
    ]
    for name, h, w in zip(classes, hist, weights):
        lines.append(f'# {name:<16}{int(h):>12}{h / max(total, 1):>12.6f}{w:>10.4f}')
    empty = [name for name, h in zip(classes, hist) if h == 0]
    if empty:
        lines.append(f'# WARNING: no pixel of {", ".join(empty)}: weight 1/ln(c) given')
    lines.append(format_weights(weights, args.decimals))
    lines.append(f'# took {time.perf_counter() - start:.2f} s ({counting:.2f} s reading and '
                 f'counting the {num_maps} label maps)')
    print('\n'.join(lines))
    return weights


if __name__ == '__main__':
    main()
