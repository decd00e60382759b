"""Check a segmentation dataset before spending hours training on it.

    python tools/misc/check_dataset.py CONFIG [--split train|val|test|all] [--cfg-options ...]

For every image/label pair of the chosen split(s) (the datasets of the config's
``<split>_dataloader``; default ``all``) it checks that

* both files exist and decode (read with the config pipeline's own ``LoadImageFromFile`` and
  ``LoadAnnotations``, so file backends, label mapping and ``reduce_zero_label`` are as in
  training),
* the label map has the size of its image,
* every label value, after the dataset's mapping (CamVid: void 11 -> 255), is a class index
  ``0..num_classes-1`` or the dataset's ignore index (255).

It prints one line per split and a summary; with problems it lists every bad file and exits 1.
"""
from __future__ import annotations

import argparse
import copy
import os.path as osp
import sys
import time
from typing import Callable, List, Optional, Tuple

import numpy as np

SPLITS = ('train', 'val', 'test')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments.

    Args:
        argv (list[str], optional): arguments (default: ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: the parsed arguments.
    """
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Check the image/label pairs of a dataset')
    parser.add_argument('config', help='config file whose dataloaders define the dataset')
    parser.add_argument(
        '--split',
        choices=SPLITS + ('all', ),
        default='all',
        help='which dataloader(s) to check (default: all)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def leaf_datasets(dataset) -> list:
    """The datasets inside dataset wrappers (``ConcatDataset``, ``RepeatDataset``, ...).

    Args:
        dataset: a built dataset.

    Returns:
        list: the datasets that hold the samples.
    """
    if hasattr(dataset, 'datasets'):
        return [d for sub in dataset.datasets for d in leaf_datasets(sub)]
    if hasattr(dataset, 'dataset') and not hasattr(dataset, 'get_data_info'):
        return leaf_datasets(dataset.dataset)
    return [dataset]


def loaders(dataset) -> Tuple[Callable, Callable]:
    """The image and annotation loading transforms of a dataset's pipeline (defaults if absent).

    Args:
        dataset: a built mmseg dataset.

    Returns:
        tuple: (image loader, annotation loader), both mmcv transforms.
    """
    from mmcv.transforms import LoadAnnotations as MMCVLoadAnnotations
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets.transforms import LoadAnnotations
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms', [])
    img = next((t for t in transforms if isinstance(t, LoadImageFromFile)), None)
    ann = next((t for t in transforms if isinstance(t, MMCVLoadAnnotations)), None)
    return img or LoadImageFromFile(), ann or LoadAnnotations()


def _unreadable(what: str, path: Optional[str], err: Exception) -> str:
    if path and '://' not in path and not osp.isfile(path):
        return f'{what} {path!r} is missing'
    return f'{what} {path!r} cannot be read ({type(err).__name__}: {err})'


def check_sample(info: dict, load_img: Callable, load_ann: Callable, num_classes: int,
                 ignore_index: int) -> List[str]:
    """Problems of one image/label pair.

    Args:
        info (dict): the dataset's ``get_data_info(i)``.
        load_img (Callable): image loading transform.
        load_ann (Callable): annotation loading transform.
        num_classes (int): number of classes (valid labels are ``0..num_classes-1``).
        ignore_index (int): the label value ignored by losses and metrics.

    Returns:
        list[str]: one sentence per problem (empty: the pair is fine).
    """
    from rtkd.datasets.transforms import seg_map_size_problem
    img_path, seg_path = info.get('img_path'), info.get('seg_map_path')
    problems, img_hw = [], None
    try:
        loaded = load_img(copy.deepcopy(info))
        if loaded is None:
            raise ValueError('the loader returned nothing')
        img_hw = loaded['ori_shape']
    except Exception as e:  # any decoder error means the file cannot be used
        problems.append(_unreadable('image', img_path, e))
    if not seg_path:
        return problems + [f'image {img_path!r} has no label map']
    try:
        seg = load_ann(dict(copy.deepcopy(info), seg_fields=[]))['gt_seg_map']
    except Exception as e:
        return problems + [_unreadable('label map', seg_path, e)]
    if img_hw is not None:
        size = seg_map_size_problem(img_hw, seg.shape, img_path, seg_path)
        if size:
            problems.append(size)
    values = np.unique(seg)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_index)]
    if bad.size:
        problems.append(
            f'label map {seg_path!r} holds values {bad.tolist()} (after the dataset\'s label '
            f'mapping) outside the classes 0..{num_classes - 1} and the ignore index '
            f'{ignore_index}')
    return problems


def check_split(dataset) -> Tuple[int, List[str]]:
    """Check every pair of a built dataset.

    Args:
        dataset: a built dataset (wrappers are unwrapped).

    Returns:
        tuple: (number of pairs checked, problems).
    """
    n, problems = 0, []
    for ds in leaf_datasets(dataset):
        if hasattr(ds, 'full_init'):
            ds.full_init()
        load_img, load_ann = loaders(ds)
        num_classes = len(ds.metainfo['classes'])
        ignore_index = getattr(ds, 'ignore_index', 255)
        for i in range(len(ds)):
            problems += check_sample(
                ds.get_data_info(i), load_img, load_ann, num_classes, ignore_index)
        n += len(ds)
    return n, problems


def main(argv: Optional[List[str]] = None) -> int:
    """Run the check.

    Args:
        argv (list[str], optional): command-line arguments.

    Returns:
        int: 0 when every pair is fine, 1 otherwise (also the process exit code).
    """
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import DATASETS, init_default_scope

    import rtkd  # noqa: F401  (registers CamVidDataset, before the config load)
    from rtkd.utils import check_file
    check_file(args.config, 'config')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    splits = SPLITS if args.split == 'all' else (args.split, )
    t0 = time.perf_counter()
    total, bad, seen = 0, [], []
    for split in splits:
        loader_cfg = cfg.get(f'{split}_dataloader')
        if not loader_cfg or 'dataset' not in loader_cfg:
            if args.split != 'all':
                print(f'{args.config} has no {split}_dataloader.dataset; pick another --split.')
                return 1
            print(f'{split}: no {split}_dataloader in the config, skipped')
            continue
        ds_cfg = loader_cfg['dataset']
        if ds_cfg in [c for _, c in seen]:
            same = next(s for s, c in seen if c == ds_cfg)
            print(f'{split}: the same dataset as {same}, not checked twice')
            continue
        seen.append((split, ds_cfg))
        t = time.perf_counter()
        try:
            dataset = DATASETS.build(copy.deepcopy(ds_cfg))
        except (OSError, ValueError, KeyError) as e:  # e.g. a missing data folder
            bad.append(f'{split}: the dataset cannot be built ({type(e).__name__}: {e})')
            print(f'{split}: the dataset cannot be built')
            continue
        n, problems = check_split(dataset)
        total += n
        bad += [f'{split}: {p}' for p in problems]
        print(f'{split}: {n} pairs, {len(problems)} problem(s) '
              f'({time.perf_counter() - t:.1f} s)')
    secs = time.perf_counter() - t0
    if not bad:
        print(f'check_dataset: {total} pairs checked in {secs:.1f} s, no problems found.')
        return 0
    print(f'check_dataset: {len(bad)} problem(s) in {total} pairs ({secs:.1f} s); fix or '
          f'remove these files:')
    for line in bad:
        print(f'  {line}')
    return 1


if __name__ == '__main__':
    sys.exit(main())
