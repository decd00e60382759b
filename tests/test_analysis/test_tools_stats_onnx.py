"""Tests of tools/analysis/model_stats.py and tools/deploy/export_onnx.py (tiny shapes)."""
from __future__ import annotations

import csv
import glob
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from helpers import ROOT, load_tool

BASELINE = osp.join(ROOT, 'configs', 'baselines', 'mmseg-fast-scnn_1xb8-2k_camvid-360x480.py')
NETWORKS = ('fast_scnn', 'contextnet', 'espnet', 'linknet', 'fanet')


@pytest.fixture(scope='module')
def model_stats():
    return load_tool('tools/analysis/model_stats.py')


@pytest.fixture(scope='module')
def export_tool():
    return load_tool('tools/deploy/export_onnx.py')


def _first_network_config():
    for net in NETWORKS:
        found = sorted(glob.glob(osp.join(ROOT, 'configs', net, '*.py')))
        if found:
            return found[0]
    return None


def test_model_stats_tables(model_stats, tmp_path):
    configs = [BASELINE]
    net_cfg = _first_network_config()
    if net_cfg is not None:
        configs.append(net_cfg)
    bad = tmp_path / 'bad_cfg.py'
    bad.write_text("_base_ = ['mmseg::_base_/models/fast_scnn.py']\n"
                   "model = dict(backbone=dict(type='NoSuchBackbone'))\n")
    out = tmp_path / 'stats'
    rc = model_stats.main(configs + [
        str(bad), '--shape', '64', '128', '--warmup', '0', '--repeat', '2', '--threads', '1',
        '--out-dir',
        str(out)
    ])
    assert rc == 1  # the bad config is reported as a row (exit 1), the others still measured
    with open(out / 'model_stats.csv') as f:
        rows = list(csv.DictReader(f))
    expected = [
        'model', 'classes', 'params_inference_m', 'params_total_m', 'gflops', 'latency_ms', 'fps',
        'ratio_vs_ref', 'config', 'notes'
    ]
    assert list(rows[0].keys()) == expected
    assert [r['model'] for r in rows
            ] == [model_stats.REF_NAME] + [osp.splitext(osp.basename(c))[0]
                                           for c in configs] + ['bad_cfg']
    ref, base, bad_row = rows[0], rows[1], rows[-1]
    assert 'ERROR' in bad_row['notes'] and 'NoSuchBackbone' in bad_row['notes']
    assert bad_row['latency_ms'] == ''
    # mmseg FastSCNN + DepthwiseSeparableFCNHead, 19 classes: 1.40 M without its 2 aux heads
    assert ref['classes'] == '19' and base['classes'] == '11'
    assert abs(float(ref['params_inference_m']) - 1.40) < 0.01
    assert float(ref['params_total_m']) > float(ref['params_inference_m'])
    # the baseline differs from the reference only by classes (11 vs 19) in the last 1x1 conv
    diff = float(ref['params_inference_m']) - float(base['params_inference_m'])
    assert abs(diff * 1e6 - 8 * (128 + 1)) < 1
    assert float(ref['ratio_vs_ref']) == 1.0
    for r in rows[:-1]:
        assert 'ERROR' not in r['notes'], r
        assert float(r['gflops']) > 0 and float(r['latency_ms']) > 0 and float(r['fps']) > 0
        assert float(r['ratio_vs_ref']) > 0
    md = (out / 'model_stats.md').read_text()
    assert '| model | classes | params inference (M) |' in md
    assert 'torch threads: 1' in md and '1x3x64x128' in md and "mode='tensor'" in md
    assert md.count('\n| ') == len(rows) + 1  # header row + one row per model


def test_exact_adaptive_pool_matches_torch():
    from rtkd.analysis.onnx_export import ExactAdaptiveAvgPool2d
    x = torch.randn(2, 3, 16, 32)
    for size in (1, 2, 3, 6, (5, 7), (20, 40)):
        assert torch.allclose(
            ExactAdaptiveAvgPool2d(size)(x), F.adaptive_avg_pool2d(x, size), atol=1e-6)


def test_export_onnx_roundtrip_with_checkpoint(export_tool, tmp_path, capsys):
    from rtkd.analysis.stats import build_segmentor
    model = build_segmentor(BASELINE, seed=3)
    ckpt = tmp_path / 'student.pth'
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), ckpt)
    # loading really replaces the (seed 0) random weights by the checkpoint's
    loaded = build_segmentor(BASELINE, checkpoint=str(ckpt))
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    # a distiller-style checkpoint (student. prefix, extra connector weights) loads the student
    from rtkd.analysis.stats import load_weights
    wrapped = tmp_path / 'distiller.pth'
    state = {f'student.{k}': v for k, v in model.state_dict().items()}
    state['connectors.0.weight'] = torch.zeros(1)
    torch.save(dict(state_dict=state), wrapped)
    other = build_segmentor(BASELINE)
    load_weights(other, str(wrapped))
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                          other.state_dict().values()))
    out = tmp_path / 'm.onnx'
    rc = export_tool.main([
        BASELINE, '--checkpoint',
        str(ckpt), '--shape', '64', '128', '--out',
        str(out), '--threads', '1'
    ])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert out.is_file() and 'max abs diff torch vs onnxruntime' in text and '-> OK' in text
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert sess.get_outputs()[0].shape == [1, 11, 8, 16]  # decode-head resolution (1/8)
    rc = export_tool.main(
        [BASELINE, '--shape', '64', '128', '--out',
         str(out), '--resize-to-input'])
    assert rc == 0
    sess = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert sess.get_outputs()[0].shape == [1, 11, 64, 128]


def test_export_onnx_bad_inputs(export_tool, tmp_path, capsys):
    rc = export_tool.main([BASELINE, '--checkpoint', str(tmp_path / 'missing.pth')])
    err = capsys.readouterr().err
    assert rc == 2 and 'checkpoint file not found' in err and 'missing.pth' in err
    wrong = tmp_path / 'wrong.pth'
    torch.save(dict(state_dict={'foo.weight': torch.zeros(1)}), wrong)
    rc = export_tool.main([BASELINE, '--checkpoint', str(wrong), '--shape', '32', '64'])
    err = capsys.readouterr().err
    assert rc == 2 and 'does not fit this config' in err
