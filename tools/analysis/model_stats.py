"""Parameters, GFLOPs and CPU latency of segmentors, vs mmseg's Fast-SCNN measured in the same run.

    python tools/analysis/model_stats.py CONFIG [CONFIG ...] [--shape 512 1024] [--repeat 7]
    python tools/analysis/model_stats.py --all --onnx      # every config under configs/
                                                           # except _base_/ and distill/

Writes ``model_stats.md`` and ``model_stats.csv`` to ``--out-dir`` and prints the markdown.

Definitions (also printed in the output):

* timed forward: ``segmentor(x, mode='tensor')`` = backbone + neck + decode head, logits at the
  decode head's resolution; no data pre-processor, no resize, no argmax; eval mode,
  ``torch.no_grad()``, batch 1, random weights (configs are measured as configured, e.g. their
  ``num_classes``). Warm-up ``--warmup`` calls per model, then ``--repeat`` rounds in which every
  model runs once (round-robin, so load changes on a shared machine hit all models alike);
  latency = median; FPS = 1 / median.
* ratio = median over rounds of (model time / reference time), reference = mmseg's stock
  Fast-SCNN (``mmseg::_base_/models/fast_scnn.py``, BN, 19 classes). Compare models by this ratio:
  absolute times drift from run to run.
* params (inference) = parameters used by the timed forward (found with autograd);
  params (total) = every parameter of the built model, auxiliary heads included.
* GFLOPs: mmengine's FlopAnalyzer (the fvcore counter) on the timed forward; one multiply-add
  counts as one FLOP. Operators it cannot count are listed in the notes column.
* ``--onnx``: each model is exported with ``tools/deploy/export_onnx.py``'s code (TorchScript
  exporter, same static input shape), checked against PyTorch (max abs diff column) and timed in
  ONNX Runtime (CPU, intra-op threads = ``--threads``) the same round-robin way; its ratio is
  against the reference's ONNX Runtime time.
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
import os.path as osp
import sys
import tempfile
import time
import traceback

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REF_NAME = 'mmseg FastSCNN (reference)'
# fvcore convention: element-wise, norm and pooling ops are not counted as FLOPs; any other op the
# counter skips is named in the notes column.
UNCOUNTED_ELEMENTWISE = {
    'add', 'sub', 'mul', 'div', 'relu', 'relu6', 'prelu', 'leaky_relu', 'hardtanh', 'sigmoid',
    'hardsigmoid', 'hardswish', 'silu', 'gelu', 'tanh', 'dropout', 'feature_dropout', 'clamp',
    'clamp_min', 'neg', 'exp', 'sqrt', 'rsqrt', 'pow', 'abs', 'expand_as', 'linalg_vector_norm',
    'max_pool2d', 'avg_pool2d', 'adaptive_avg_pool2d', 'adaptive_max_pool2d'
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Model statistics: params, GFLOPs, CPU latency '
                                'relative to mmseg Fast-SCNN measured in the same run.')
    p.add_argument('configs', nargs='*', help='segmentor configs')
    p.add_argument(
        '--all',
        action='store_true',
        help='every config under configs/ except _base_/ and distill/')
    p.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[512, 1024],
        metavar=('H', 'W'),
        help='input height and width (default 512 1024)')
    p.add_argument('--warmup', type=int, default=3, help='warm-up calls per model (default 3)')
    p.add_argument('--repeat', type=int, default=7, help='timed rounds (default 7)')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch / ONNX Runtime threads (default: torch default)')
    p.add_argument('--onnx', action='store_true', help='also export and time with ONNX Runtime')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset for --onnx (default 17)')
    p.add_argument(
        '--out-dir',
        default=osp.join('work_dirs', 'model_stats'),
        help='where model_stats.md / model_stats.csv go')
    args = p.parse_args(argv)
    if not args.configs and not args.all:
        p.error('give one or more CONFIG paths or --all.')
    if min(args.shape) < 1 or args.repeat < 1 or args.warmup < 0:
        p.error('--shape must be positive, --repeat >= 1 and --warmup >= 0.')
    return args


def find_all_configs(config_root: str = osp.join(ROOT, 'configs')) -> list:
    """Every ``*.py`` under ``config_root`` except ``_base_/`` and ``distill/`` folders."""
    found = []
    for path in sorted(glob.glob(osp.join(config_root, '**', '*.py'), recursive=True)):
        parts = osp.relpath(path, config_root).split(os.sep)
        if '_base_' in parts or 'distill' in parts or parts[-1].startswith('__'):
            continue
        found.append(path)
    return found


def _fmt(value, digits: int) -> str:
    return '' if value is None else f'{value:.{digits}f}'


COLUMNS = [  # (csv key, markdown header, digits or None for text)
    ('model', 'model', None),
    ('classes', 'classes', None),
    ('params_inference_m', 'params inference (M)', 3),
    ('params_total_m', 'params total incl. aux (M)', 3),
    ('gflops', 'GFLOPs', 2),
    ('latency_ms', 'latency (ms)', 1),
    ('fps', 'FPS', 1),
    ('ratio_vs_ref', 'latency ratio vs ref', 2),
]
ONNX_COLUMNS = [
    ('ort_latency_ms', 'ORT latency (ms)', 1),
    ('ort_fps', 'ORT FPS', 1),
    ('ort_ratio_vs_ref', 'ORT ratio vs ref ORT', 2),
    ('ort_max_abs_diff', 'ORT max abs diff', None),
]


def write_tables(rows: list, header_lines: list, out_dir: str, with_onnx: bool) -> str:
    """Write ``model_stats.md`` and ``model_stats.csv``; return the markdown text."""
    cols = (
        COLUMNS + (ONNX_COLUMNS if with_onnx else []) + [('config', 'config', None),
                                                         ('notes', 'notes', None)])
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'model_stats.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=[c[0] for c in cols], extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ('' if row.get(k) is None else row.get(k)) for k, _, _ in cols})
    lines = list(header_lines) + ['']
    lines.append('| ' + ' | '.join(h for _, h, _ in cols) + ' |')
    lines.append('|' + '|'.join('---' if d is None else '---:' for _, _, d in cols) + '|')
    for row in rows:
        cells = []
        for key, _, digits in cols:
            v = row.get(key)
            if key == 'ort_max_abs_diff' and v is not None:
                cells.append(f'{v:.1e}')
            elif digits is None:
                cells.append('' if v is None else str(v).replace('|', '/'))
            else:
                cells.append(_fmt(v, digits))
        lines.append('| ' + ' | '.join(cells) + ' |')
    text = '\n'.join(lines) + '\n'
    with open(osp.join(out_dir, 'model_stats.md'), 'w') as f:
        f.write(text)
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from rtkd.analysis.stats import (REFERENCE_CONFIG, build_segmentor, count_flops, count_params,
                                     median, num_classes_of, paired_ratio, random_input,
                                     time_round_robin)
    from rtkd.utils import check_file, cpu_name

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    configs = list(args.configs)
    if args.all:
        configs += [c for c in find_all_configs() if c not in configs]
    for c in configs:
        if '::' not in c:
            check_file(c, 'config')
    h, w = args.shape
    x = random_input(args.shape)

    # 1. build every model, count params and FLOPs (a failing config becomes an error row)
    entries = [(REF_NAME, REFERENCE_CONFIG)]
    for c in configs:
        name = osp.splitext(osp.basename(c.split('::')[-1]))[0]
        entries.append((c if name in dict(entries) else name, c))  # keep row names unique
    rows, models = [], {}
    for name, cfg_path in entries:
        rel = cfg_path if '::' in cfg_path else osp.relpath(cfg_path)
        row = dict(model=name, config=rel, notes='')
        rows.append(row)
        try:
            # The reference: mmseg's Fast-SCNN model config; SyncBN is turned into BN on build.
            model = build_segmentor(cfg_path)
            row['classes'] = num_classes_of(model)
            n = count_params(model, x)
            row['params_inference_m'] = n['inference'] / 1e6
            row['params_total_m'] = n['total'] / 1e6
            flops, skipped = count_flops(model, x)
            row['gflops'] = flops / 1e9
            skipped = {
                k: v
                for k, v in skipped.items()
                if k.replace('aten::', '').rstrip('_') not in UNCOUNTED_ELEMENTWISE
            }
            if skipped:
                row['notes'] += 'FLOPs not counted: ' + ', '.join(
                    f'{k.replace("aten::", "")} x{v}' for k, v in sorted(skipped.items())) + '; '
            models[name] = model
        except Exception as e:  # noqa: BLE001  (report and continue with the other configs)
            if name == REF_NAME:
                raise
            row['notes'] += f'ERROR {type(e).__name__}: {str(e).splitlines()[0][:200]}'
            traceback.print_exc()
        print(f'[model_stats] built {name}', file=sys.stderr, flush=True)

    # 2. latency, PyTorch, round-robin
    def closure(m):

        def run():
            with torch.no_grad():
                m(x, mode='tensor')

        return run

    times = time_round_robin({k: closure(m) for k, m in models.items()}, args.warmup, args.repeat)
    for row in rows:
        t = times.get(row['model'])
        if t:
            row['latency_ms'] = median(t) * 1e3
            row['fps'] = 1.0 / median(t)
            row['ratio_vs_ref'] = paired_ratio(t, times[REF_NAME])

    # 3. ONNX Runtime, same input and threads
    ort_version = ''
    if args.onnx:
        import onnxruntime

        from rtkd.analysis.onnx_export import export_onnx, make_ort_session, verify_onnx
        ort_version = onnxruntime.__version__
        sessions = {}
        with tempfile.TemporaryDirectory() as tmp:
            for row in rows:
                name = row['model']
                if name not in models:
                    continue
                try:
                    f = export_onnx(
                        models[name],
                        args.shape,
                        osp.join(tmp, f'{len(sessions)}.onnx'),
                        opset=args.opset)
                    sess = make_ort_session(f, threads)
                    diff, scale = verify_onnx(models[name], f, x, session=sess)
                    row['ort_max_abs_diff'] = diff
                    if diff > 1e-3 + 1e-5 * scale:  # same default tolerance as export_onnx.py
                        row['notes'] += f'ONNX MISMATCH (max |logits| {scale:.2e}); '
                    sessions[name] = sess
                except Exception as e:  # noqa: BLE001
                    if name == REF_NAME:
                        raise
                    row['notes'] += f'ONNX ERROR {type(e).__name__}: {str(e).splitlines()[0][:200]}'
                    traceback.print_exc()
            feeds = {k: {s.get_inputs()[0].name: x.numpy()} for k, s in sessions.items()}
            ort_times = time_round_robin(
                {
                    k: (lambda s=s, fd=feeds[k]: s.run(None, fd))
                    for k, s in sessions.items()
                }, args.warmup, args.repeat)
        for row in rows:
            t = ort_times.get(row['model'])
            if t:
                row['ort_latency_ms'] = median(t) * 1e3
                row['ort_fps'] = 1.0 / median(t)
                row['ort_ratio_vs_ref'] = paired_ratio(t, ort_times[REF_NAME])

    for row in rows:
        row['notes'] = row['notes'].strip().rstrip(';')
    header = [
        '# Model statistics (tools/analysis/model_stats.py)',
        '',
        f'- run: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, {cpu_name()}, '
        f'{os.cpu_count()} logical CPUs, torch {torch.__version__}, torch threads: {threads}' +
        (f', onnxruntime {ort_version} (intra-op threads: {threads})' if args.onnx else ''),
        f'- input: 1x3x{h}x{w} (random, float32, CPU), random weights; timed: '
        "`segmentor(x, mode='tensor')` = backbone + neck + decode head, logits at decode-head "
        'resolution (no pre-processing, resize or argmax), eval mode, `torch.no_grad()`',
        f'- warm-up {args.warmup} per model, then {args.repeat} round-robin rounds; latency = '
        'median, FPS = 1/median; ratio = median over rounds of (model / reference), '
        f'reference = mmseg stock Fast-SCNN (`{REFERENCE_CONFIG}`, BN, 19 classes) in this run',
        '- params inference = used by the timed forward (autograd); total includes auxiliary '
        'heads; GFLOPs = mmengine FlopAnalyzer (fvcore), 1 multiply-add = 1 FLOP, element-wise, '
        'norm and pooling ops not counted; other uncounted ops are named in the notes',
    ]
    if args.onnx:
        header.append('- ORT: TorchScript ONNX export (opset %d, static shape), ONNX Runtime CPU; '
                      'max abs diff vs PyTorch on the same input' % args.opset)
    text = write_tables(rows, header, args.out_dir, args.onnx)
    print(text)
    print(
        f'[model_stats] wrote {osp.join(args.out_dir, "model_stats.md")} and model_stats.csv',
        file=sys.stderr)
    return 1 if any('ERROR' in r['notes'] for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
