"""Teacher forward for a cache build: PyTorch vs ONNX Runtime on the same batches.

    python tools/benchmarks/teacher_backend.py RECIPE [--images 16] [--scale 1.0] \
        [--batch-size 4] [--repeats 3]

Loads the first ``--images`` training images as the geometric cache build does (loading
transforms + ``Resize(scale_factor)``, training preprocessing without padding), then times the
teacher forward cut at the recipe's teacher taps with each backend, alternating backends batch
by batch (so a background load hits both alike); prints the median per batch, the ratio, the
one-off export + check time of ONNX Runtime and the max |onnx - torch| of every tap (float32,
before fp16 storage). Threads: ``torch.get_num_threads()`` for both (set ``OMP_NUM_THREADS``).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

from mmengine.config import Config, DictAction


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('recipe')
    p.add_argument('--images', type=int, default=16)
    p.add_argument('--scale', type=float, default=1.0)
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--repeats', type=int, default=3, help='passes over the images per backend')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args()
    cfg = Config.fromfile(args.recipe)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    import torch
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import DATASETS, DefaultScope

    import rtkd  # noqa: F401
    from rtkd.distill import cache_builder as cb
    from rtkd.distill.onnx_teacher import OnnxTeacherRunner
    model = cb.build_live_distiller(cfg)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    loading = [
        dict(t) for t in ds_cfg['pipeline']
        if str(t.get('type', '')).startswith('Load') and t.get('type') != 'LoadAnnotations'
    ]
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        base = DATASETS.build(dict(ds_cfg, pipeline=[]))
        pipe = Compose(loading + [
            dict(type='Resize', scale_factor=args.scale, keep_ratio=True),
            dict(type='PackSegInputs')
        ])
        samples = [
            pipe(copy.deepcopy(base.get_data_info(i))) for i in range(min(args.images, len(base)))
        ]
    batches = []
    for i in range(0, len(samples), args.batch_size):
        data = model.data_preprocessor(pseudo_collate(samples[i:i + args.batch_size]), False)
        batches.append(data['inputs'])
    t0 = time.perf_counter()
    ort = OnnxTeacherRunner(model)
    ort(batches[0])  # export + session + check against torch (one torch forward)
    setup = time.perf_counter() - t0
    times = dict(torch=[], onnxruntime=[])
    diff: dict = {}
    with torch.no_grad():
        for _ in range(args.repeats):
            for x in batches:
                t = time.perf_counter()
                ref = model._run_teacher(x, None)
                times['torch'].append(time.perf_counter() - t)
                t = time.perf_counter()
                got = ort(x)
                times['onnxruntime'].append(time.perf_counter() - t)
                for n in ref:
                    diff[n] = max(diff.get(n, 0.0), float((ref[n] - got[n]).abs().max()))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f'{len(samples)} images x{args.scale} ({tuple(batches[0].shape)} per batch), '
          f'{torch.get_num_threads()} thread(s), median of {len(times["torch"])} batches')
    print(f"torch        {med['torch']:.3f} s/batch")
    print(f"onnxruntime  {med['onnxruntime']:.3f} s/batch   (export + check once: {setup:.1f} s)")
    print(f"ratio torch / onnxruntime = {med['torch'] / med['onnxruntime']:.2f}x")
    for n, d in diff.items():
        print(f'max |onnx - torch| {n}: {d:.3g}')
    ort.close()


if __name__ == '__main__':
    main()
