"""Side-by-side predictions: image | ground truth | teacher | student | distilled student.

Images come from a dataset config (``--dataset-config``; default: the first model's config, its
``val_dataloader``) or from a folder (``--img-dir``, optional ``--ann-dir`` with label PNGs of the
same names). Each model is given as CONFIG CHECKPOINT; configs may be plain mmseg configs or
distillation configs (the student is taken). Colours and legend come from the dataset metainfo.
Each prediction panel shows that image's mIoU against the ground truth.

Example::

    python tools/analysis/show_predictions.py -n 4 \\
        --teacher ../shared/teachers/bisenetv2_camvid-240x320_infer.py \\
                  ../shared/teachers/bisenetv2_camvid-240x320.pth \\
        --student configs/baselines/mmseg-fast-scnn_1xb8-2k_camvid-360x480.py \\
                  work_dirs/base/iter_2000.pth \\
        --distilled configs/distill/seg/cwd/<recipe>.py work_dirs/cwd/iter_2000.pth \\
        --out predictions.png
"""
from __future__ import annotations

import argparse
import glob
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np  # noqa: E402

_IMG_EXT = ('.png', '.jpg', '.jpeg', '.bmp')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Grid of predictions of several segmentors.')
    src = p.add_argument_group('images (one of)')
    src.add_argument(
        '--dataset-config',
        help='config whose val (or --split) dataset to show; '
        'default: the first model config')
    src.add_argument('--img-dir', help='folder of images instead of a dataset')
    p.add_argument('--ann-dir', help='with --img-dir: folder of label PNGs with the same names')
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument(
        '--split',
        default='val',
        choices=['train', 'val', 'test'],
        help='which dataloader of the dataset config (default val)')
    p.add_argument('-n', '--num-images', type=int, default=4, help='number of images (rows)')
    p.add_argument('--indices', type=int, nargs='+', help='explicit image indices to show')
    p.add_argument('--teacher', nargs=2, metavar=('CONFIG', 'CHECKPOINT'))
    p.add_argument(
        '--student',
        nargs=2,
        metavar=('CONFIG', 'CHECKPOINT'),
        help='student trained without distillation (baseline)')
    p.add_argument(
        '--distilled',
        nargs=2,
        metavar=('CONFIG', 'CHECKPOINT'),
        help='student trained with distillation')
    p.add_argument(
        '--model',
        nargs=3,
        action='append',
        default=[],
        metavar=('NAME', 'CONFIG', 'CHECKPOINT'),
        help='any further model column')
    p.add_argument('--out', default='predictions.png', help='PNG to write')
    p.add_argument('--device', default='cpu')
    p.add_argument('--panel-width', type=float, default=2.6, help='inches per panel')
    return p.parse_args(argv)


def _fail(msg: str):
    raise SystemExit(f'error: {msg}')


def collect_models(args) -> List[Tuple[str, str, str]]:
    models = []
    for name, spec in (('teacher', args.teacher), ('student', args.student), ('distilled',
                                                                              args.distilled)):
        if spec:
            models.append((name, spec[0], spec[1]))
    models += [tuple(m) for m in args.model]
    if not models:
        _fail('give at least one model with --teacher/--student/--distilled CONFIG CHECKPOINT.')
    from rtkd.apis import resolve_config_path
    for name, cfg, ckpt in models:
        try:
            resolve_config_path(cfg, f'{name} config')
        except FileNotFoundError as e:
            _fail(str(e))
        if '://' not in ckpt and not osp.isfile(ckpt):
            _fail(f'{name} checkpoint {osp.abspath(ckpt)!r} does not exist.')
    return models


def images_from_dataset(cfg_path: str, split: str, data_root: Optional[str]):
    """(image path, gt array or None) pairs and the dataset metainfo."""
    from mmengine.registry import init_default_scope
    from mmseg.datasets.transforms import LoadAnnotations
    from mmseg.registry import DATASETS

    from rtkd.apis import is_distiller_config, load_config, student_config
    cfg = load_config(cfg_path)
    if is_distiller_config(cfg) and f'{split}_dataloader' not in cfg:
        cfg = student_config(cfg)
    loader = cfg.get(f'{split}_dataloader')
    if not loader or 'dataset' not in loader:
        _fail(f'config {cfg_path!r} has no {split}_dataloader.dataset; pass --dataset-config or '
              '--img-dir.')
    ds_cfg = loader['dataset']
    if data_root:
        ds_cfg['data_root'] = data_root
    ds_cfg['pipeline'] = []
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = DATASETS.build(ds_cfg)
    load = LoadAnnotations()
    items = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)

        def gt(info=info):
            if not info.get('seg_map_path') or not osp.isfile(info['seg_map_path']):
                return None
            res = load(
                dict(
                    seg_map_path=info['seg_map_path'],
                    label_map=info.get('label_map'),
                    reduce_zero_label=info.get('reduce_zero_label', False),
                    seg_fields=[]))
            return res['gt_seg_map'].astype(np.int64)

        items.append((info['img_path'], gt))
    return items, dict(dataset.metainfo)


def images_from_folder(img_dir: str, ann_dir: Optional[str]):
    if not osp.isdir(img_dir):
        _fail(f'image folder {osp.abspath(img_dir)!r} does not exist.')
    if ann_dir and not osp.isdir(ann_dir):
        _fail(f'annotation folder {osp.abspath(ann_dir)!r} does not exist.')
    paths = sorted(p for p in glob.glob(osp.join(img_dir, '*')) if p.lower().endswith(_IMG_EXT))
    if not paths:
        _fail(f'no images ({", ".join(_IMG_EXT)}) in {osp.abspath(img_dir)!r}.')
    import mmcv
    items = []
    for p in paths:

        def gt(p=p):
            if not ann_dir:
                return None
            stem = osp.splitext(osp.basename(p))[0]
            cands = [q for q in glob.glob(osp.join(ann_dir, stem + '*')) if q.endswith('.png')]
            return (mmcv.imread(cands[0], flag='unchanged', backend='pillow').astype(np.int64)
                    if cands else None)

        items.append((p, gt))
    return items


def _default_palette(n: int) -> list:
    rng = np.random.default_rng(42)
    return rng.integers(0, 255, (n, 3)).tolist()


def main(argv=None) -> dict:
    args = parse_args(argv)
    models = collect_models(args)
    if args.num_images < 1:
        _fail('--num-images must be at least 1.')

    import mmcv
    from mmseg.apis import inference_model

    from rtkd.apis import init_segmentor
    from rtkd.visualization.figures import prediction_grid

    meta = None
    if args.img_dir:
        items = images_from_folder(args.img_dir, args.ann_dir)
    else:
        items, meta = images_from_dataset(args.dataset_config or models[0][1], args.split,
                                          args.data_root)
        if not items:
            _fail('the dataset is empty.')
    idx = args.indices or list(range(min(args.num_images, len(items))))
    bad = [i for i in idx if not 0 <= i < len(items)]
    if bad:
        _fail(f'image indices {bad} out of range; the source has {len(items)} images.')

    loaded = []
    for name, cfg, ckpt in models:
        loaded.append((name, init_segmentor(cfg, ckpt, args.device, need_test_pipeline=True)))
    meta = meta or loaded[0][1].dataset_meta or {}
    n_cls = max(int(getattr(m.decode_head, 'num_classes', 0)) for _, m in loaded)
    classes = list(meta.get('classes') or [f'class {i}' for i in range(n_cls)])
    palette = meta.get('palette') or _default_palette(len(classes))
    for name, m in loaded:
        k = int(getattr(m.decode_head, 'num_classes', len(classes)))
        if k != len(classes):
            _fail(f'{name} predicts {k} classes but the dataset has {len(classes)}; use models '
                  'trained on this dataset.')

    samples = []
    for i in idx:
        path, gt_fn = items[i]
        img = mmcv.imread(path, channel_order='rgb')
        preds = {}
        for name, m in loaded:
            res = inference_model(m, path)
            preds[name] = res.pred_sem_seg.data[0].cpu().numpy().astype(np.int64)
        samples.append(dict(name=osp.basename(path), image=img, gt=gt_fn(), preds=preds))
    summary = prediction_grid(
        samples, [n for n, _ in loaded], classes, palette, args.out, panel_width=args.panel_width)
    scores = ', '.join(f'{k} {v:.1f}' for k, v in summary['mean_image_miou'].items()
                       if v is not None)
    print(f'wrote {osp.abspath(args.out)}: {summary["rows"]} images x {summary["cols"]} panels' +
          (f'; mean per-image mIoU: {scores}' if scores else ''))
    return summary


if __name__ == '__main__':
    main()
