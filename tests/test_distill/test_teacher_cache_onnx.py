"""Teacher-output cache built with the teacher in ONNX Runtime (``--backend onnxruntime``).

Tiny CamVid (tests/conftest.py) and the tiny mmseg teacher of tests/helpers/teacher_cache.py. The
onnxruntime cache must equal the torch cache to float rounding (stored as float32 to see it),
a broken export must be refused before anything is cached, and the manifest must say which
backend built the cache while a recipe reads it like a torch-built one.
"""
from __future__ import annotations

import glob
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

from rtkd.distill import cache_builder as cb  # noqa: E402
from rtkd.distill import onnx_teacher  # noqa: E402
from rtkd.distill.onnx_teacher import OnnxMismatchError, OnnxTeacherRunner  # noqa: E402
from rtkd.distill.teacher_cache import read_manifest  # noqa: E402
from helpers import ROOT, build_distiller, saved_teacher, seg_model, seg_recipe  # noqa: E402


@pytest.fixture(scope='module')
def seg_teacher(tmp_path_factory):
    return saved_teacher(str(tmp_path_factory.mktemp('seg_teacher_onnx')), seg_model(8))


def _entries(folder: str) -> dict:
    return {
        osp.basename(p): dict(np.load(p))
        for p in sorted(glob.glob(osp.join(folder, 'entries', '*.npz')))
    }


def test_onnxruntime_geometric_cache_equals_torch_cache(tmp_path, tiny_camvid, seg_teacher):
    """Two scales x flip (two input sizes, two ONNX graphs): ORT entries == torch entries."""
    cfg = Config.fromfile(seg_recipe(tmp_path, tiny_camvid, seg_teacher))
    kw = dict(scales=[0.5, 1.0], flip=True, batch_size=3, dtype='float32')
    m_t = cb.build_geometric(cfg, str(tmp_path / 'torch'), **kw)
    m_o = cb.build_geometric(cfg, str(tmp_path / 'ort'), backend='onnxruntime', **kw)
    a, b = _entries(str(tmp_path / 'torch')), _entries(str(tmp_path / 'ort'))
    assert len(a) == 16 and sorted(a) == sorted(b)
    for name in a:
        assert sorted(a[name]) == sorted(b[name]), name
        for k in a[name]:
            x, y = a[name][k].astype(np.float64), b[name][k].astype(np.float64)
            assert x.shape == y.shape and np.abs(x - y).max() <= 1e-5 * max(1, np.abs(x).max()), \
                (name, k, np.abs(x - y).max())
    # the manifest: same fields, the same values except the backend (and the build time)
    assert m_t['backend'] == 'torch' and m_o['backend'] == 'onnxruntime'
    assert set(m_t) == set(m_o)
    assert {k for k in m_t if m_t[k] != m_o[k]} <= {'backend', 'backend_info', 'build_s'}
    info = read_manifest(str(tmp_path / 'ort'))['backend_info']
    assert sorted(info['graphs']) == ['3x24x32', '3x48x64']
    assert all(c['t_logits']['max_abs'] <= 1e-5 for c in info['checks'].values()), info
    # a recipe reads it like a torch-built cache, and --check compares it with the live teacher
    cfg_c = Config.fromfile(seg_recipe(tmp_path, tiny_camvid, seg_teacher, name='c.py'))
    cfg_c.merge_from_dict({'model.teacher.cache': dict(dir=str(tmp_path / 'ort'))})
    cached = build_distiller(cfg_c)
    assert cached._teacher == [] and cached.teacher_cache.mode == 'geometric'
    res = cb.check_cache(cfg, str(tmp_path / 'ort'), batches=2)['t_logits']
    assert res['batches'] == 2 and 0.0 <= res['argmax_agreement'] <= 100.0


def test_onnxruntime_exact_cache_equals_live_teacher(tmp_path, tiny_camvid, seg_teacher):
    """Exact mode through ORT: --check against the live torch teacher agrees to float rounding."""
    cfg = Config.fromfile(seg_recipe(tmp_path, tiny_camvid, seg_teacher, max_iters=2))
    out = str(tmp_path / 'exact')
    m = cb.build_exact(cfg, out, iters=2, dtype='float32', backend='onnxruntime')
    assert m['status'] == 'complete' and m['backend'] == 'onnxruntime'
    res = cb.check_cache(cfg, out, batches=2)['t_logits']
    assert res['argmax_agreement'] == 100.0 and res['max_abs'] <= 1e-5, res


def _corrupt_first_weight(path: str) -> None:
    """Scale the largest initializer of an ONNX file by 1.5 (a wrong export)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    arr = numpy_helper.to_array(init) * 1.5
    init.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), init.name))
    onnx.save(model, path)


def test_broken_export_is_refused_before_caching(tmp_path, tiny_camvid, seg_teacher, monkeypatch):
    """An export that computes something else stops the build; no entry is written."""
    export = OnnxTeacherRunner.export

    def broken(self, x, out_file):
        export(self, x, out_file)
        _corrupt_first_weight(out_file)
        return out_file

    monkeypatch.setattr(OnnxTeacherRunner, 'export', broken)
    cfg = Config.fromfile(seg_recipe(tmp_path, tiny_camvid, seg_teacher))
    out = str(tmp_path / 'broken')
    with pytest.raises(OnnxMismatchError, match="differs from PyTorch on tap 't_logits'"):
        cb.build_geometric(cfg, out, scales=[1.0], backend='onnxruntime')
    assert _entries(out) == {}
    assert read_manifest(out)['status'] == 'building'
    # a tolerance that accepts the corruption lets it through (the check is what refused it)
    m = cb.build_geometric(cfg, out, scales=[1.0], backend='onnxruntime', onnx_tol=1e6)
    assert m['status'] == 'complete'


def test_runner_taps_tuple_features_and_input_renormalisation(tmp_path, tiny_camvid, seg_teacher):
    """Several taps (``[i]`` of a tuple, ``#in``) and a teacher with its own normalisation."""
    taps = dict(
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg',
        t_feat='teacher:backbone[2]',
        t_in='teacher:decode_head.conv_seg#in')
    recipe = seg_recipe(tmp_path, tiny_camvid, seg_teacher)
    cfg = Config.fromfile(recipe)
    cfg.model.taps = taps
    # the student normalises differently: the teacher's inputs must be re-normalised in-graph
    cfg.model.student.model.data_preprocessor = dict(
        cfg.model.student.model.data_preprocessor, mean=[0.0, 0.0, 0.0], std=[255.0] * 3)
    model = cb.build_live_distiller(cfg)
    runner = OnnxTeacherRunner(model)
    x = torch.randn(2, 3, 32, 48)
    got = runner(x)
    ref = model._run_teacher(x, None)
    assert set(got) == {'t_logits', 't_feat', 't_in'}
    for k in got:
        assert got[k].shape == ref[k].shape
        assert torch.allclose(got[k], ref[k], atol=1e-5), (k, (got[k] - ref[k]).abs().max())
    assert list(runner.checked) == [(2, 3, 32, 48)]
    runner(torch.randn(1, 3, 32, 48))  # another batch size: the same graph, checked again
    assert len(runner.sessions) == 1 and len(runner.checked) == 2
    runner.close()


def test_cli_backend_and_manifest(tmp_path, tiny_camvid, seg_teacher, monkeypatch, capsys):
    """``cache_teacher.py --backend onnxruntime`` and ``--check`` naming the backend."""
    recipe = seg_recipe(tmp_path, tiny_camvid, seg_teacher)
    sys.path.insert(0, osp.join(ROOT, 'tools', 'distill'))
    try:
        import cache_teacher
    finally:
        sys.path.pop(0)
    out = str(tmp_path / 'cli')
    monkeypatch.setattr(sys, 'argv', [
        'cache_teacher.py', recipe, '--out', out, '--backend', 'onnxruntime', '--onnx-tol', '1e-4'
    ])
    assert cache_teacher.main() == 0
    m = read_manifest(out)
    assert m['backend'] == 'onnxruntime' and m['backend_info']['tol'] == 1e-4
    # resuming with the other backend: nothing to compute, the manifest names both
    monkeypatch.setattr(sys, 'argv', ['cache_teacher.py', recipe, '--out', out])
    assert cache_teacher.main() == 0
    assert read_manifest(out)['backend'] == 'onnxruntime+torch'
    monkeypatch.setattr(sys, 'argv', ['cache_teacher.py', '--check', recipe, out, '--batches', '1'])
    capsys.readouterr()
    assert cache_teacher.main() == 0
    assert 'built with the onnxruntime+torch backend' in capsys.readouterr().out
    with pytest.raises(ValueError, match='backend must be one of'):
        cb.teacher_runner(None, 'tensorrt')
    assert onnx_teacher.ONNX_TOL == 1e-3
