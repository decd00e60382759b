"""Channel-wise distributions of teacher and student for one image (the CWD paper's picture).

For the tapped layers (the distiller's tap grammar, :mod:`rtkd.distill.taps`, without the side
prefix: ``decode_head.conv_seg`` for the logits, ``decode_head.conv_seg#in`` for the feature
entering the classifier, ``backbone[2]`` for an element of a tuple output, ``@k`` for one call of
a module that runs several times), every channel's activation map is turned
into a distribution over spatial positions, phi(y_c) = softmax(y_c / T) over the H*W positions,
as Channel-Wise Distillation (Shu et al., ICCV 2021) compares them. The grid shows one row per
channel (teacher | student heat maps of p*H*W, each panel scaled to its own peak unless
--shared-scale), labelled with the class name when the layer has one channel per class, the
channel's CWD term T^2 * KL(phi_t || phi_s) (computed by ``ChannelWiseKD``'s own functions)
and both peaks in multiples of the uniform density.

Example::

    python tools/analysis/show_channels.py \\
        --teacher ../shared/teachers/bisenetv2_camvid-240x320_infer.py \\
                  ../shared/teachers/bisenetv2_camvid-240x320.pth \\
        --student configs/baselines/mmseg-fast-scnn_1xb8-2k_camvid-360x480.py \\
                  work_dirs/base/iter_2000.pth \\
        --layer-teacher decode_head.conv_seg --layer-student decode_head.conv_seg \\
        --img ../shared/data/camvid/val/0016E5_07959.png --tau 4 --out channels.png
"""
from __future__ import annotations

import argparse
import contextlib
import os.path as osp


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Per-channel spatial distributions (CWD) of teacher '
                                'and student for one image.')
    p.add_argument('--teacher', nargs=2, metavar=('CONFIG', 'CHECKPOINT'), required=True)
    p.add_argument(
        '--student',
        nargs=2,
        metavar=('CONFIG', 'CHECKPOINT'),
        required=True,
        help='student config + checkpoint (a distillation config takes its student)')
    p.add_argument(
        '--layer-teacher',
        default='decode_head.conv_seg',
        help='dotted module name in the teacher (default: the logits conv)')
    p.add_argument(
        '--layer-student', default='decode_head.conv_seg', help='dotted module name in the student')
    p.add_argument('--img', required=True, help='image file')
    p.add_argument('--tau', type=float, default=4.0, help='temperature T (CWD: 4 on logits)')
    p.add_argument(
        '--channels',
        type=int,
        nargs='+',
        help='channel indices to draw (default: all if <= --max-channels, else the '
        'ones where teacher and student differ most)')
    p.add_argument('--max-channels', type=int, default=12, help='rows when choosing channels')
    p.add_argument('--no-image', action='store_true', help='omit the input-image row')
    p.add_argument(
        '--shared-scale',
        action='store_true',
        help='one colour scale per row (default: each panel scaled to its own peak)')
    p.add_argument('--out', default='channels.png', help='PNG to write')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def _fail(msg: str):
    raise SystemExit(f'error: {msg}')


def main(argv=None) -> dict:
    args = parse_args(argv)
    from rtkd.apis import resolve_config_path
    for role, (cfg, ckpt) in (('teacher', args.teacher), ('student', args.student)):
        try:
            resolve_config_path(cfg, f'{role} config')
        except FileNotFoundError as e:
            _fail(str(e))
        if '://' not in ckpt and not osp.isfile(ckpt):
            _fail(f'{role} checkpoint {osp.abspath(ckpt)!r} does not exist.')
    if not osp.isfile(args.img):
        _fail(f'image {osp.abspath(args.img)!r} does not exist.')
    if args.tau <= 0:
        _fail('--tau must be positive.')

    import mmcv
    import torch
    from mmseg.apis import inference_model

    from rtkd.apis import init_segmentor, record_taps
    from rtkd.visualization.figures import channel_grid, channel_kl, spatial_distributions

    feats, metas, models = {}, {}, {}
    for role, (cfg, ckpt) in (('teacher', args.teacher), ('student', args.student)):
        models[role] = init_segmentor(cfg, ckpt, args.device, need_test_pipeline=True)
        metas[role] = models[role].dataset_meta or {}
    layers = dict(teacher=args.layer_teacher, student=args.layer_student)
    try:  # the distiller's tap grammar (@k, #in, [i]); both names resolved before any forward
        with contextlib.ExitStack() as stack:
            recs = {
                role: stack.enter_context(record_taps(model, {'tap': layers[role]}, role))
                for role, model in models.items()
            }
            with torch.no_grad():
                for model in models.values():
                    inference_model(model, args.img)
    except (KeyError, ValueError, IndexError) as e:  # bad name / call / index, tap did not run
        _fail(str(e.args[0]) if e.args else str(e))
    for role, rec in recs.items():
        value = rec['tap']
        if not torch.is_tensor(value):
            _fail(f'{role} tap {layers[role]!r} records a {type(value).__name__}, not a tensor; '
                  'pick one element with [i] (or one call with @k).')
        if value.dim() != 4 and '[' in layers[role]:
            _fail(f'{role} tap {layers[role]!r}: the module output is a tensor, not a tuple/list, '
                  'so [i] indexed the batch; drop the [index].')
        feats[role] = value.detach()
    del models
    t, s = feats['teacher'], feats['student']
    if t.dim() != 4 or s.dim() != 4:
        _fail(f'tapped outputs must be (N, C, H, W) maps; got teacher {tuple(t.shape)}, '
              f'student {tuple(s.shape)}.')
    t_dist = spatial_distributions(t, args.tau)
    s_dist = spatial_distributions(s, args.tau)
    kl = channel_kl(t, s, args.tau) if t.shape[1] == s.shape[1] else None
    n_ch = min(t.shape[1], s.shape[1])
    if args.channels:
        bad = [c for c in args.channels if not 0 <= c < n_ch]
        if bad:
            _fail(f'channels {bad} out of range; the tapped layers have {n_ch} common channels.')
        channels = args.channels
    elif n_ch <= args.max_channels:
        channels = list(range(n_ch))
    elif kl is not None:
        channels = sorted(torch.argsort(kl, descending=True)[:args.max_channels].tolist())
    else:
        channels = list(range(args.max_channels))
    classes = metas['teacher'].get('classes') or metas['student'].get('classes')
    labels = list(classes) if classes is not None and len(classes) == t.shape[1] else None
    image = None if args.no_image else mmcv.imread(args.img, channel_order='rgb')
    title = (f'phi(y_c) = softmax over H*W of y_c/T, T={args.tau:g}; teacher '
             f'{args.layer_teacher} {tuple(t.shape[1:])}, student {args.layer_student} '
             f'{tuple(s.shape[1:])}' +
             (f'; CWD loss {float(kl.mean()):.3f}' if kl is not None else ''))
    summary = channel_grid(
        t_dist,
        s_dist,
        channels,
        args.out,
        labels=labels,
        kl=kl,
        image=image,
        titles=(f'teacher: {args.layer_teacher}', f'student: {args.layer_student}'),
        suptitle=title,
        shared_scale=args.shared_scale)
    summary['cwd_loss'] = float(kl.mean()) if kl is not None else None
    print(f'wrote {osp.abspath(args.out)}: {len(channels)} channels; teacher map '
          f'{tuple(t.shape[1:])}, student map {tuple(s.shape[1:])}' +
          (f'; CWD loss (T={args.tau:g}) {summary["cwd_loss"]:.4f}' if kl is not None else ''))
    return summary


if __name__ == '__main__':
    main()
