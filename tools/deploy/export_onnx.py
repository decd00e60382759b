"""Export an mmseg/rtkd segmentor to ONNX and check it against PyTorch with ONNX Runtime.

    python tools/deploy/export_onnx.py CONFIG [--checkpoint CKPT] [--shape H W] [--out FILE]
                                              [--opset 17] [--resize-to-input]

What is exported: ``segmentor(x, mode='tensor')`` (backbone + neck + decode head) for one
``1 x 3 x H x W`` image that is already normalised (the data pre-processor's mean/std is NOT in the
graph). Output ``logits``: ``1 x num_classes x h x w`` at the decode head's resolution (e.g. 1/8
of the input for Fast-SCNN), or at ``H x W`` with ``--resize-to-input`` (bilinear). Static shape.

Exporter: torch's TorchScript exporter (``torch.onnx.export(dynamo=False)``; only ``onnx`` needed).
``--exporter dynamo`` selects the dynamo exporter when ``onnxscript`` is installed.

Check: PyTorch and ONNX Runtime (CPU) run the same random input; the script prints the max abs
difference and exits with status 1 when it exceeds ``atol + rtol * max|logits|``
(defaults 1e-3 and 1e-5). Bad input (missing config/checkpoint, wrong checkpoint) exits with
status 2 and a one-sentence message.

The checkpoint may be a normal mmseg checkpoint (``state_dict``), e.g. the student-only checkpoint
written by rtkd's distillation tools, a DDP one (``module.``) or a distiller one (``student.``).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import os.path as osp
import sys


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Export a segmentor to ONNX and verify it with '
                                'ONNX Runtime.')
    p.add_argument('config', help='segmentor config (local path or pkg::path)')
    p.add_argument('--checkpoint', help='checkpoint to load (default: random weights)')
    p.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[512, 1024],
        metavar=('H', 'W'),
        help='input height and width (default 512 1024)')
    p.add_argument('--out', help='ONNX file (default work_dirs/onnx/<config name>.onnx)')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset version (default 17)')
    p.add_argument(
        '--resize-to-input',
        action='store_true',
        help='resize the logits to H x W inside the graph (default: decode-head '
        'resolution)')
    p.add_argument(
        '--exporter',
        choices=['torchscript', 'dynamo'],
        default='torchscript',
        help='torch.onnx exporter (default torchscript, i.e. dynamo=False)')
    p.add_argument('--atol', type=float, default=1e-3, help='absolute tolerance (default 1e-3)')
    p.add_argument(
        '--rtol',
        type=float,
        default=1e-5,
        help='tolerance relative to max |logits| (default 1e-5)')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch and ONNX Runtime threads (default: torch default)')
    p.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from rtkd.analysis.onnx_export import export_onnx, verify_onnx
    from rtkd.analysis.stats import build_segmentor, num_classes_of, random_input

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    try:
        from rtkd.utils import check_file
        if args.checkpoint:
            check_file(args.checkpoint, 'checkpoint')  # before the (slower) model build
        if args.exporter == 'dynamo' and importlib.util.find_spec('onnxscript') is None:
            raise ValueError('--exporter dynamo needs the onnxscript package; install it or use '
                             'the default --exporter torchscript.')
        if min(args.shape) < 1:
            raise ValueError(f'--shape must be two positive integers H W, got {args.shape}.')
        model = build_segmentor(
            args.config, checkpoint=args.checkpoint, cfg_options=args.cfg_options)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        print(f'export_onnx.py: error: {e}', file=sys.stderr)
        return 2
    name = osp.splitext(osp.basename(args.config.split('::')[-1]))[0]
    out = args.out or osp.join('work_dirs', 'onnx', f'{name}.onnx')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)

    export_onnx(
        model,
        args.shape,
        out,
        opset=args.opset,
        resize_to_input=args.resize_to_input,
        exporter=args.exporter)
    x = random_input(args.shape, seed=1)
    diff, scale = verify_onnx(model, out, x, threads=threads, resize_to_input=args.resize_to_input)
    tol = args.atol + args.rtol * scale
    h, w = args.shape
    res = 'input' if args.resize_to_input else 'decode head'
    weights = f'checkpoint {args.checkpoint}' if args.checkpoint else 'random weights'
    print(f'exported {args.config} ({weights}) '
          f'-> {out} [{args.exporter} exporter, opset {args.opset}, input 1x3x{h}x{w}, '
          f'{num_classes_of(model)} classes, logits at {res} resolution]')
    print(f'max abs diff torch vs onnxruntime: {diff:.3e} (max |logits| {scale:.3e}, '
          f'tolerance {tol:.3e}) -> {"OK" if diff <= tol else "FAILED"}')
    return 0 if diff <= tol else 1


if __name__ == '__main__':
    sys.exit(main())
