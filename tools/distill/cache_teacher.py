"""Build (or check) a teacher-output cache for a distillation recipe.

Build once, then train with ``teacher=dict(..., cache=dict(dir=DIR))`` in the recipe::

    python tools/distill/cache_teacher.py RECIPE --out DIR [--scales 0.5 1 1.5 2] [--flip] \
        [--topk K]
    python tools/distill/cache_teacher.py RECIPE --out DIR --scales pipeline --flip  # mmdet
    python tools/distill/cache_teacher.py RECIPE --out DIR --exact --iters N     # exact mode
    torchrun --nproc_per_node=2 tools/distill/cache_teacher.py RECIPE --out DIR --launcher pytorch
    python tools/distill/cache_teacher.py --check RECIPE DIR --batches K         # vs a live teacher
    python tools/distill/cache_teacher.py RECIPE --out DIR --backend onnxruntime  # teacher in ORT

Geometric mode (default) stores the teacher taps of every training image at each scale (and
mirrored with ``--flip``); the distiller replays each sample's resize, crop and flip on them.
Exact mode stores the taps of exactly the first N training batches of the recipe's seeded stream
(to fp16 precision the live teacher's). An interrupted build resumes where it stopped.
``--backend onnxruntime`` runs the teacher, cut at its taps, exported to ONNX in ONNX Runtime
(CPU); the export is checked against PyTorch on the first batch of every input size and the
build stops if they differ by more than ``--onnx-tol``. See
``rtkd/distill/teacher_cache.py`` and the README ("Teacher-output cache").
"""
from __future__ import annotations

import argparse
import os
import sys

from mmengine.config import Config, DictAction


def scale_arg(text: str):
    """A resize factor, or ``'pipeline'``."""
    if text == 'pipeline':
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a resize factor nor 'pipeline'")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('recipe', help='distillation recipe (a Distiller config)')
    p.add_argument('dir', nargs='?', help='cache folder (with --check)')
    p.add_argument('--out', help='cache folder to write')
    p.add_argument('--check', action='store_true', help='compare DIR with a live teacher')
    p.add_argument('--batches', type=int, default=4, help='batches compared by --check')
    p.add_argument(
        '--scales',
        type=scale_arg,
        nargs='+',
        default=[1.0],
        help="geometric mode: resize factors of the original images, or 'pipeline': each image "
        "at the training pipeline's own deterministic Resize (mmdet's fixed-scale pipelines)")
    p.add_argument('--flip', action='store_true', help='geometric mode: cache mirrored images')
    p.add_argument('--topk', type=int, default=None, help='store the top-k channels only')
    p.add_argument('--batch-size', type=int, default=4, help='images per teacher forward')
    p.add_argument(
        '--dtype',
        choices=['float16', 'float32'],
        default='float16',
        help='storage precision (float32: targets bit-equal to the live teacher)')
    p.add_argument('--exact', action='store_true', help='exact mode (by training iteration)')
    p.add_argument(
        '--backend',
        choices=['torch', 'onnxruntime'],
        default='torch',
        help='engine of the teacher forward (onnxruntime: ONNX export run on the CPU provider, '
        'checked against PyTorch first)')
    p.add_argument(
        '--onnx-tol',
        type=float,
        default=None,
        help='onnxruntime: largest accepted |onnx - torch| relative to max(1, max |torch|) '
        '(default 1e-3)')
    p.add_argument(
        '--iters',
        type=int,
        default=None,
        help='exact mode: iterations to cache (default: the recipe max_iters)')
    p.add_argument(
        '--overwrite', action='store_true', help='replace a cache made by another recipe in --out')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override recipe settings, key=value (as tools/train.py)')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if not os.path.isfile(args.recipe):
        sys.exit(f'recipe not found: {os.path.abspath(args.recipe)!r}')
    cfg = Config.fromfile(args.recipe)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.launcher == 'pytorch':
        from rtkd.utils import setup_cpu_distributed
        if not setup_cpu_distributed(cfg):
            from mmengine.dist import init_dist
            init_dist('pytorch')
    import rtkd  # noqa: F401
    from rtkd.distill import cache_builder as cb
    from rtkd.distill.teacher_cache import TeacherCacheError
    try:
        if args.check:
            if not args.dir:
                sys.exit('--check needs the cache folder: --check RECIPE DIR')
            res = cb.check_cache(cfg, args.dir, args.batches)
            from rtkd.distill.teacher_cache import read_manifest
            m = read_manifest(args.dir)
            print(f"cache {os.path.abspath(args.dir)} ({m.get('mode')} mode, built with the "
                  f"{m.get('backend', 'torch')} backend) vs the live PyTorch teacher:")
            from tabulate import tabulate
            rows = [
                (n, f"{r['argmax_agreement']:.2f}", f"{r['argmax_agreement_all']:.2f}",
                 f"{r['mean_kl']:.5f}", f"{r['rel_l2']:.4f}", f"{r['max_abs']:.4g}", r['batches'])
                for n, r in res.items()
            ]
            print(
                tabulate(
                    rows,
                    headers=[
                        'tap', 'argmax agreement % (image)', 'argmax agreement % (with padding)',
                        'mean KL (nats/pixel)', 'rel. L2 error', 'max |diff|', 'batches'
                    ],
                    tablefmt='github'))
            return 0
        if not args.out:
            sys.exit('give --out DIR (the cache folder to write)')
        if args.exact:
            iters = args.iters or int(cfg.train_cfg.max_iters)
            cb.build_exact(
                cfg,
                args.out,
                iters,
                topk=args.topk,
                overwrite=args.overwrite,
                dtype=args.dtype,
                backend=args.backend,
                onnx_tol=args.onnx_tol)
        else:
            cb.build_geometric(
                cfg,
                args.out,
                scales=args.scales,
                flip=args.flip,
                topk=args.topk,
                batch_size=args.batch_size,
                overwrite=args.overwrite,
                dtype=args.dtype,
                backend=args.backend,
                onnx_tol=args.onnx_tol)
    except TeacherCacheError as e:
        sys.exit(f'cache_teacher: {e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
