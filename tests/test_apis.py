"""rtkd.apis, the one loading layer: config paths, recipes -> student, weights, inference models,
taps with the distiller's grammar (issue 13, item 1)."""
from __future__ import annotations

import os.path as osp

import pytest
import torch
import torch.nn as nn

from helpers import ROOT

BASELINE = osp.join(ROOT, 'configs', 'baselines', 'mmseg-fast-scnn_1xb8-2k_camvid-360x480.py')
FAST_SCNN = 'configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py'  # relative to the repo root


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def baseline():
    from rtkd.apis import init_segmentor
    return init_segmentor(BASELINE, seed=1)


# ---------------------------------------------------------------- config paths
def test_resolve_config_path_cwd_repo_root_and_base_dir(tmp_path, monkeypatch):
    from rtkd.apis import load_config, resolve_config_path
    monkeypatch.chdir(tmp_path)  # not the repo: the repo root is tried next
    assert resolve_config_path(FAST_SCNN) == osp.join(ROOT, FAST_SCNN)
    (tmp_path / 'near').mkdir()
    (tmp_path / 'near' / 'mine.py').write_text('x = 1\n')
    assert resolve_config_path(
        'mine.py', base_dir=str(tmp_path / 'near')) == str(tmp_path / 'near' / 'mine.py')
    assert resolve_config_path('near/mine.py') == str(tmp_path / 'near' / 'mine.py')  # cwd first
    assert resolve_config_path('mmseg::fastscnn/x.py') == 'mmseg::fastscnn/x.py'
    with pytest.raises(FileNotFoundError, match=r"student config not found: tried .*nope\.py"):
        resolve_config_path('nope.py', 'student config')
    cfg = load_config(FAST_SCNN)
    assert cfg.model.backbone.type == 'RTFastSCNN'
    assert load_config(cfg) is cfg  # a Config passes through


def test_distiller_builder_uses_the_same_functions():
    """The distiller imports these names from builder.py: they are rtkd.apis' own objects."""
    import rtkd.apis as apis
    from rtkd.distill import builder
    for name in ('load_config', 'normalize_spec', 'resolve_checkpoint_path', 'resolve_config_path',
                 'REPO_ROOT'):
        assert getattr(builder, name) is getattr(apis, name), name
    assert callable(builder.build_network) and callable(builder.close_registered_names)
    import rtkd.analysis.stats as stats
    assert stats.build_segmentor is apis.init_segmentor and stats.load_weights is apis.load_weights


def test_student_config_of_a_recipe_in_all_spec_forms(tmp_path):
    from mmengine.config import Config

    from rtkd.apis import is_distiller_config, student_config
    recipe_path = str(tmp_path / 'recipe.py')
    (tmp_path / 'student.py').write_text(f"_base_ = [{osp.join(ROOT, FAST_SCNN)!r}]\n"
                                         "model = dict(decode_head=dict(num_classes=7))\n")

    def recipe(student):
        return Config(
            dict(model=dict(type='Distiller', student=student), test_pipeline=['from the recipe']),
            cfg_text='#',
            filename=recipe_path)

    # a path next to the recipe (tried after the cwd and the repo root)
    scfg = student_config(recipe('student.py'))
    assert is_distiller_config(recipe('student.py')) and not is_distiller_config(scfg)
    assert scfg.model.decode_head.num_classes == 7
    assert scfg.test_pipeline[-1]['type'] == 'PackSegInputs'  # the student's own pipeline
    # dict(config=..., cfg_options=...), as the benchmarks write it
    scfg = student_config(
        recipe(dict(config=FAST_SCNN, cfg_options={'model.decode_head.num_classes': 5})))
    assert scfg.model.decode_head.num_classes == 5
    # a model dict: the recipe is the config, model replaced
    scfg = student_config(recipe(dict(type='EncoderDecoder', backbone=dict(type='X'))))
    assert scfg.model.backbone.type == 'X' and scfg.test_pipeline == ['from the recipe']
    with pytest.raises(ValueError, match='no model.student'):
        student_config(
            Config(dict(model=dict(type='Distiller')), cfg_text='#', filename=recipe_path))


# ---------------------------------------------------------------- weights: one rule
def test_load_weights_one_rule(baseline, tmp_path):
    from rtkd.apis import init_segmentor, load_weights
    ref = baseline.state_dict()
    # a whole distiller checkpoint under DDP: student taken, connectors / teacher left out
    state = {f'module.student.{k}': v for k, v in ref.items()}
    state['module.connectors.s_feat.conv.weight'] = torch.zeros(3)
    torch.save(
        dict(state_dict=state, meta=dict(dataset_meta=dict(classes=('a', 'b')))),
        tmp_path / 'distiller.pth')
    other = init_segmentor(BASELINE, seed=2)
    ckpt = load_weights(other, str(tmp_path / 'distiller.pth'))
    assert ckpt['meta']['dataset_meta']['classes'] == ('a', 'b')
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in ref.items())
    # training-only auxiliary heads may be missing, nothing else
    no_aux = {k: v for k, v in ref.items() if not k.startswith('auxiliary_head')}
    assert len(no_aux) < len(ref)
    torch.save(dict(state_dict=no_aux), tmp_path / 'no_aux.pth')
    load_weights(init_segmentor(BASELINE, seed=3), str(tmp_path / 'no_aux.pth'))
    no_head = {k: v for k, v in ref.items() if not k.startswith('decode_head.conv_seg')}
    torch.save(dict(state_dict=no_head), tmp_path / 'no_head.pth')
    with pytest.raises(
            ValueError, match=r'does not fit this config: 2 of .* decode_head\.conv_seg'):
        load_weights(other, str(tmp_path / 'no_head.pth'))
    wrong = dict(ref, **{'decode_head.conv_seg.bias': torch.zeros(19)})
    torch.save(wrong, tmp_path / 'bare_wrong.pth')  # a bare state dict is accepted too
    with pytest.raises(ValueError, match=r'shape mismatch for decode_head\.conv_seg\.bias'):
        load_weights(other, str(tmp_path / 'bare_wrong.pth'))
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        load_weights(other, str(tmp_path / 'missing.pth'))


# ---------------------------------------------------------------- inference models
def test_init_segmentor_is_mmseg_init_model_plus_the_rules(baseline, tmp_path):
    from mmengine.config import Config
    from mmseg.apis import init_model

    from rtkd.apis import init_segmentor
    ref = init_model(Config.fromfile(BASELINE), device='cpu')
    assert list(ref.state_dict()) == list(baseline.state_dict())
    assert type(ref) is type(baseline) and not baseline.training
    assert baseline.cfg.model.train_cfg is None and baseline.cfg.model.pretrained is None
    classes = baseline.dataset_meta['classes']
    assert classes[0] == 'Sky' and len(classes) == 11
    # SyncBN (cannot run on CPU) becomes BN
    sync = init_segmentor(BASELINE, cfg_options={'model.backbone.norm_cfg.type': 'SyncBN'})
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in sync.modules())
    assert sync.cfg.model.backbone.norm_cfg.type == 'SyncBN'
    # a distillation recipe + its whole checkpoint: the student with the student's weights
    recipe = tmp_path / 'recipe.py'
    recipe.write_text(f"_base_ = [{BASELINE!r}]\n"
                      f"model = dict(_delete_=True, type='Distiller', student={BASELINE!r})\n")
    torch.save(
        dict(state_dict={
            f'student.{k}': v
            for k, v in baseline.state_dict().items()
        }), tmp_path / 'kd.pth')
    student = init_segmentor(str(recipe), str(tmp_path / 'kd.pth'), seed=5)
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in baseline.state_dict().items())
    with pytest.raises(ValueError, match='has no `model`'):
        init_segmentor(Config(dict(x=1), cfg_text='#', filename='x.py'))


# ---------------------------------------------------------------- taps: the distiller's grammar
def test_record_taps_in_index_and_hooks_removed(baseline):
    from rtkd.apis import record_taps
    x = torch.randn(1, 3, 32, 64)
    conv = baseline.decode_head.conv_seg
    with record_taps(baseline, {
            'in': 'decode_head.conv_seg#in',
            'out': 'decode_head.conv_seg',
            'bb': 'student:backbone[2]'
    }) as rec, torch.no_grad():
        logits = baseline(x, mode='tensor')
    assert torch.equal(rec['out'], logits)
    assert rec['in'].shape[1] == conv.in_channels and torch.allclose(conv(rec['in']), logits)
    with torch.no_grad():
        assert torch.equal(rec['bb'], baseline.backbone(x)[2])
    assert not conv._forward_hooks and not conv._forward_pre_hooks  # hooks gone afterwards
    with pytest.raises(
            KeyError,
            match=r"teacher has no module 'decode_head\.conv_sge'; close "
            r'valid names: decode_head\.conv_seg'):
        with record_taps(baseline, 'decode_head.conv_sge', side='teacher'):
            pass


class _Twice(nn.Module):
    """One ReLU called twice per forward (like mmseg's BasicBlock)."""

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.relu(x) - 1.0)


def test_record_taps_call_selection():
    from rtkd.apis import record_taps
    model = _Twice()
    x = torch.tensor([[2.0, -3.0, 0.5]], dtype=torch.float64)
    with record_taps(model, {'first': 'relu@0', 'last': 'relu@-1', 'all': 'relu@*'}) as rec:
        model(x)
    assert torch.equal(rec['first'], torch.relu(x))
    assert torch.equal(rec['last'], torch.relu(torch.relu(x) - 1.0))
    assert len(rec['all']) == 2
    with pytest.raises(ValueError, match=r"ambiguous.*called 2 times.*'student:relu@0'"):
        with record_taps(model, 'relu'):
            model(x)
    with pytest.raises(KeyError, match='did not run during the forward pass'):
        with record_taps(model, 'relu'):
            pass
