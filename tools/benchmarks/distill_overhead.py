"""Distillation step overhead and peak memory, measured in one run (any task).

    python tools/benchmarks/distill_overhead.py \
        configs/distill/seg/cwd/cwd_logits_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py \
        --batch 8 --crop 240 320 --repeats 7

Times, interleaved step by step so that machine-load drifts hit all three alike, and reported as
medians after one warm-up:
  (a) one ``Distiller.train_step`` (student loss, teacher no_grad forward cut short after its
      taps, distillation losses, backward, optimizer step),
  (b) one plain student ``train_step`` (own loss, backward, step),
  (c) one full teacher forward under ``no_grad`` in ``tensor`` mode,
and prints ``ratio = a / (b + c)`` (the acceptance bound is 1.10). With ``--teacher-cache DIR``
(a geometric cache made by ``tools/distill/cache_teacher.py``) it also times
  (d) one ``Distiller.train_step`` of the same recipe reading its teacher taps from ``DIR``
      (the teacher is not built),
and prints ``cached / student = d / b`` (the teacher cache's target is <= 1.15). Peak memory of a
step (a) and of a step (b) is read from the kernel's resident-set high-water mark (``VmHWM``),
reset before each step through ``/proc/self/clear_refs``: the peak during the step, and its rise
over the resident memory before it (activations and gradients; the teacher's weights are resident
in both).

Data: ``--data real`` takes one batch from the config's own training dataloader (e.g. CamVid);
``--data fake-det`` makes random images with boxes (detection recipes whose dataset, e.g. COCO,
is not on the machine). Weights of the teacher are loaded as configured unless
``--random-teacher`` (timing does not depend on them).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch


def fake_det_batch(n: int, size: int, num_classes: int = 80, seed: int = 0) -> dict:
    """``n`` random uint8 images (size x size) with 3 random GT boxes each (mmdet samples)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 255, (3, size, size), generator=g, dtype=torch.uint8))
        xy = torch.rand(3, 2, generator=g) * size * 0.6
        wh = torch.rand(3, 2, generator=g) * size * 0.3 + 16
        s = DetDataSample()
        s.gt_instances = InstanceData(
            bboxes=HorizontalBoxes(torch.cat([xy, xy + wh], 1)),
            labels=torch.randint(0, num_classes, (3, ), generator=g))
        s.set_metainfo(
            dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                scale_factor=(1.0, 1.0)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def real_batch(cfg, batch: int, crop) -> dict:
    """One batch from the config's own training dataloader (crop size overridden if given)."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    dl_cfg = copy.deepcopy(cfg.train_dataloader)
    dl_cfg.batch_size = batch
    dl_cfg.num_workers = 0
    dl_cfg.persistent_workers = False
    if crop:
        for t in dl_cfg.dataset.get('pipeline', []):
            if t.get('type') in ('RandomCrop', 'RecordedRandomCrop'):
                t['crop_size'] = tuple(crop)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        loader = Runner.build_dataloader(dl_cfg, seed=0)
        return next(iter(loader))


def _status_kb(key: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return float(line.split()[1])
    return float('nan')


def step_peak_mb(fn) -> tuple:
    """Run ``fn`` once; return (peak RSS during it, rise over the RSS before it) in MB.

    Uses Linux's ``/proc/self/clear_refs`` (writing 5 resets ``VmHWM`` to the current RSS);
    returns NaNs where that is not available.
    """
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        fn()
        return float('nan'), float('nan')
    before = _status_kb('VmRSS')
    fn()
    peak = _status_kb('VmHWM')
    return peak / 1024, (peak - before) / 1024


def build(cfg, args, cache_dir=None):
    """Build the distiller (student and teacher inside) in the config's scope."""
    from mmengine.registry import MODELS, DefaultScope
    model_cfg = copy.deepcopy(cfg.model)
    teacher = dict(model_cfg.teacher) if isinstance(model_cfg.teacher, dict) \
        else dict(config=model_cfg.teacher)
    teacher.pop('cache', None)
    if cache_dir:
        teacher['cache'] = dict(dir=cache_dir)
    model_cfg.teacher = teacher
    if args.random_teacher and not cache_dir:
        model_cfg.teacher = dict(model_cfg.teacher, checkpoint=None)
    if args.crop and model_cfg.get('type') == 'Distiller':
        student = model_cfg.student
        spec = dict(student) if isinstance(student, dict) and 'config' in student \
            else dict(config=student)
        opts = dict(spec.get('cfg_options') or {})
        opts['model.data_preprocessor.size'] = tuple(args.crop)
        spec['cfg_options'] = opts
        model_cfg.student = spec
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        distiller = MODELS.build(model_cfg)
    distiller.train()
    return distiller


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='a Distiller recipe')
    p.add_argument('--data', choices=['real', 'fake-det'], default='real')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--crop', type=int, nargs=2, default=None, help='training crop h w (real)')
    p.add_argument('--size', type=int, default=320, help='square image size (fake-det)')
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--random-teacher', action='store_true')
    p.add_argument(
        '--teacher-cache',
        default=None,
        help='also time the recipe with its teacher read from this geometric cache')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from mmengine.config import Config
    from mmengine.optim import OptimWrapper

    import rtkd  # noqa: F401

    cfg = Config.fromfile(args.config)
    distiller = build(cfg, args)
    student, teacher = distiller.student, distiller.teacher
    data = (
        real_batch(cfg, args.batch, args.crop) if args.data == 'real' else fake_det_batch(
            args.batch, args.size))
    d_ow = OptimWrapper(torch.optim.SGD(distiller.parameters(), lr=1e-6))
    s_ow = OptimWrapper(torch.optim.SGD(student.parameters(), lr=1e-6))
    cached = None
    if args.teacher_cache:
        cached = build(cfg, args, cache_dir=args.teacher_cache)
        cached.load_state_dict(distiller.state_dict())  # the same student and connectors
        c_ow = OptimWrapper(torch.optim.SGD(cached.parameters(), lr=1e-6))

    def distill_step():
        distiller.train_step(copy.deepcopy(data), d_ow)

    def student_step():
        student.train_step(copy.deepcopy(data), s_ow)

    def teacher_forward():
        batch = student.data_preprocessor(copy.deepcopy(data), True)
        with torch.no_grad():
            teacher(batch['inputs'], batch['data_samples'], mode='tensor')

    fns = dict(distill=distill_step, student=student_step, teacher=teacher_forward)
    if cached is not None:
        fns['cached'] = lambda: cached.train_step(copy.deepcopy(data), c_ow)
    for fn in fns.values():
        fn()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med['distill'] / (med['student'] + med['teacher'])

    peaks = {k: step_peak_mb(fns[k]) for k in ('student', 'distill', 'cached') if k in fns}

    shape = (f'{args.batch}x3x{args.crop[0]}x{args.crop[1]}'
             if args.crop and args.data == 'real' else f'{args.batch}x3x{args.size}x{args.size}'
             if args.data == 'fake-det' else f'batch {args.batch} (config crop)')
    print(f'config: {args.config}')
    print(f'input {shape} ({args.data} data), {args.threads} threads, median of {args.repeats} '
          'interleaved steps after one warm-up')
    print(f"distill step {med['distill']:.3f} s | student step {med['student']:.3f} s | "
          f"teacher no_grad forward {med['teacher']:.3f} s")
    print(f'ratio distill / (student + teacher) = {ratio:.3f}  (bound 1.10)')
    print(f"peak RSS during a step: distillation {peaks['distill'][0]:.0f} MB "
          f"(+{peaks['distill'][1]:.0f} MB over before it) | student alone "
          f"{peaks['student'][0]:.0f} MB (+{peaks['student'][1]:.0f} MB)")
    extra = {}
    if cached is not None:
        extra = dict(
            cached_ratio=med['cached'] / med['student'],
            peak_cached_mb=peaks['cached'][0],
            rise_cached_mb=peaks['cached'][1])
        print(f"cached-teacher distill step {med['cached']:.3f} s | cached / student = "
              f"{extra['cached_ratio']:.3f} (target 1.15) | live distill / student = "
              f"{med['distill'] / med['student']:.3f} | peak RSS cached step "
              f"{peaks['cached'][0]:.0f} MB (+{peaks['cached'][1]:.0f} MB)")
    return dict(
        **med,
        **extra,
        ratio=ratio,
        peak_distill_mb=peaks['distill'][0],
        rise_distill_mb=peaks['distill'][1],
        peak_student_mb=peaks['student'][0],
        rise_student_mb=peaks['student'][1])


if __name__ == '__main__':
    main()
