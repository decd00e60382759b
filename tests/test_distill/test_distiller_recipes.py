"""The shipped distillation recipes (configs/distill/seg/**): parse, follow the naming scheme, and
the CamVid CWD recipe builds with the real shared teacher and takes a training step."""
from __future__ import annotations

import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

import rtkd  # noqa: F401
from helpers import RECIPE_NAME, ROOT, batch, is_distill_recipe

METHODS = ('cwd', 'skd', 'ofd', 'nfd', 'dist', 'cirkd', 'bpkd', 'byot', 'ka', 'dml')
#: distillation models whose recipes follow the naming scheme (a KA stage 1 trains an auto-encoder)
DISTILLERS = ('Distiller', 'CohortDistiller')
RECIPES = sorted(
    p for m in METHODS for p in glob.glob(osp.join(ROOT, f'configs/distill/seg/{m}/*.py')))
TEACHER = osp.join(ROOT, '..', 'shared', 'teachers', 'bisenetv2_camvid-240x320.pth')


def test_recipes_parse_and_follow_naming():
    assert len(RECIPES) >= 14
    methods = set()
    for path in RECIPES:
        name = osp.basename(path)
        folder = osp.basename(osp.dirname(path))
        cfg = Config.fromfile(path)
        model = cfg.model
        if model.type not in DISTILLERS:  # e.g. ka-stage1_*: no student yet
            assert name.startswith(f'{folder}-'), name
            continue
        m = RECIPE_NAME.match(name)
        assert m, f'{name} does not follow {{method}}_{{where}}_{{teacher}}_{{student}}_...'
        assert m['method'].split('-')[0] == folder, name
        methods.add(folder)
        for loss in model.losses.values():
            assert loss.get('student', loss.get('mutual', [None])[0]) in model.taps, name
            assert loss.get('teacher', loss.get('mutual', [None])[-1]) in model.taps, name
        if any(loss.type == 'HolisticKD' for loss in model.losses.values()):
            assert cfg.optim_wrapper.constructor == 'DistillOptimWrapperConstructor', name
        assert cfg.model_wrapper_cfg.type == 'DistillerDataParallel', name
    assert methods == set(METHODS)


@pytest.mark.skipif(not osp.isfile(TEACHER), reason='shared CamVid teacher not available')
def test_camvid_cwd_recipe_trains_a_step():
    cfg = Config.fromfile(
        osp.join(
            ROOT, 'configs/distill/seg/cwd/'
            'cwd_logits_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py'))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(model.student.backbone).__name__ == 'RTFastSCNN'
    assert type(model.teacher.backbone).__name__ == 'BiSeNetV2'
    model.data_preprocessor.size = (64, 96)  # tiny crop instead of 360x480
    log = model.train_step(batch(2, 64, 96), ow)
    assert float(log['loss_cwd']) > 0 and torch.isfinite(log['loss'])


# ---------------------------------------------------------------------------------------------
# configs that compose: teacher bases, the distillation runtime base, the student named once,
# metafiles (issue 13, item 3)
# ---------------------------------------------------------------------------------------------
#: teacher base -> (its folder when RTKD_TEACHERS is unset, weights file)
TEACHER_BASES = {
    'bisenetv2_camvid-240x320.py': ('../shared/teachers', 'bisenetv2_camvid-240x320.pth'),
    'bisenetv2-ft3000_camvid-240x320.py':
    ('../shared/teachers', 'bisenetv2_camvid-240x320_ft3000.pth'),
    'bisenetv2-ft7000_camvid-240x320.py':
    ('checkpoints/teachers', 'bisenetv2_camvid-240x320_ft7000.pth'),  # ships with rtkd
}
ALL_RECIPES = sorted(glob.glob(osp.join(ROOT, 'configs', 'distill', '**', '*.py'), recursive=True))
CAMVID_RECIPES = [p for p in ALL_RECIPES if 'camvid' in osp.basename(p)]
#: recipes whose student is the model of their first base (`student={{_base_.model}}`)
STUDENT_FROM_BASE = [p for p in ALL_RECIPES if '{{_base_.model}}' in open(p).read()]


def _raw(path: str) -> str:
    with open(path) as f:
        return f.read()


def _code(path: str) -> str:
    """The recipe without its comment lines."""
    return '\n'.join(line for line in _raw(path).splitlines() if not line.lstrip().startswith('#'))


def test_camvid_recipes_name_their_teacher_through_a_base(monkeypatch, tmp_path):
    """No CamVid recipe spells a machine path; with RTKD_TEACHERS unset a teacher base points at
    ../shared/teachers (the ft7000 one at the repository's checkpoints/teachers), with it set
    every teacher (config and weights) moves there."""
    assert len(CAMVID_RECIPES) >= 15
    for path in CAMVID_RECIPES:
        assert '../shared' not in _code(path), f'{path}: name the teacher through a teacher base'
    monkeypatch.delenv('RTKD_TEACHERS', raising=False)
    for base, (folder, ckpt) in TEACHER_BASES.items():
        t = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'teachers', base)).teacher
        assert t.config == f'{folder}/bisenetv2_camvid-240x320_infer.py', base
        assert t.checkpoint == f'{folder}/{ckpt}', base
    monkeypatch.setenv('RTKD_TEACHERS', str(tmp_path))
    with_teacher = 0
    for path in CAMVID_RECIPES:
        model = Config.fromfile(path).model
        specs = [model.get('teacher')] if model.type != 'CohortDistiller' else \
            [m for m in model.members.values() if isinstance(m, dict) and 'checkpoint' in m]
        for spec in (s for s in specs if s):
            assert spec.config.startswith(str(tmp_path)), (path, spec.config)
            assert spec.checkpoint.startswith(str(tmp_path)), (path, spec.checkpoint)
            with_teacher += 1
    assert with_teacher >= 12  # BYOT and DML (two students) have no teacher


def test_shipped_teacher_loads_into_its_config():
    """checkpoints/teachers holds the ft7000 teacher: weights-only loadable, every weight of its
    inference config present (rtkd's loading rule raises on a missing one), the SHA-256 its README
    names, and its config builds the same model as the in-repo inference config."""
    from rtkd.apis import init_segmentor, load_weights
    from rtkd.distill.teacher import teacher_identity
    from rtkd.distill.teacher_cache import file_sha256
    folder = osp.join(ROOT, 'checkpoints', 'teachers')
    ckpt = osp.join(folder, 'bisenetv2_camvid-240x320_ft7000.pth')
    cfg = osp.join(folder, 'bisenetv2_camvid-240x320_infer.py')
    assert file_sha256(ckpt) in _raw(osp.join(folder, 'README.md'))
    model = init_segmentor(Config.fromfile(cfg))
    meta = load_weights(model, ckpt)['meta']
    assert meta['iter'] == 4000 and len(meta['dataset_meta']['classes']) == 11
    ours = teacher_identity(
        dict(config=osp.join(ROOT, 'configs/_base_/teachers/bisenetv2_camvid-240x320_infer.py')))
    assert teacher_identity(dict(config=cfg))['teacher_config'] == ours['teacher_config']


@pytest.mark.skipif(
    not osp.isfile(osp.join(ROOT, '..', 'shared', 'teachers', 'bisenetv2_camvid-240x320_infer.py')),
    reason='shared CamVid teacher not available')
def test_in_repo_teacher_config_is_the_shared_one():
    """configs/_base_/teachers/bisenetv2_camvid-240x320_infer.py (what a user copies into
    $RTKD_TEACHERS) builds the same model dict as the shared inference config, so the
    teacher-cache / KA digests agree."""
    from rtkd.distill.teacher import teacher_identity
    shared = teacher_identity(dict(config='../shared/teachers/bisenetv2_camvid-240x320_infer.py'))
    ours = teacher_identity(
        dict(config='configs/_base_/teachers/bisenetv2_camvid-240x320_infer.py'))
    assert ours['teacher_config'] == shared['teacher_config']


def test_every_distill_recipe_uses_the_runtime_base():
    """The DDP wrapper and the student hook come from configs/_base_/distill_runtime.py; every
    recipe imports rtkd; the text-level filter of the config sweeps (helpers.is_distill_recipe)
    agrees with the parsed model type."""
    distillers = 0
    for path in ALL_RECIPES:
        cfg = Config.fromfile(path)
        assert is_distill_recipe(path) == (cfg.model.type in DISTILLERS), path
        if cfg.model.type not in DISTILLERS:
            continue
        assert 'rtkd' in cfg.get('custom_imports', {}).get('imports', []), path
        distillers += 1
        assert 'model_wrapper_cfg' not in _code(path), f'{path}: take it from distill_runtime.py'
        assert cfg.model_wrapper_cfg == dict(type='DistillerDataParallel'), path
        assert [h.type for h in cfg.custom_hooks].count('StudentCheckpointHook') == 1, path
    assert distillers >= 35


def test_student_named_once_builds_the_student_config():
    """`student={{_base_.model}}` is the first base's model, and builds the same network (same
    modules, same initial weights) as `student='<that config>'`."""
    from mmengine.registry import DefaultScope

    from rtkd.distill.builder import build_network
    assert len(STUDENT_FROM_BASE) >= 7
    for path in STUDENT_FROM_BASE:
        raw = _code(path)
        first = re.search(r"_base_ = \[\s*'([^']+)'", raw).group(1)
        assert raw.count(osp.basename(first)) == 1, f'{path} names its student twice'
        base = osp.normpath(osp.join(osp.dirname(path), first))
        cfg = Config.fromfile(path)
        assert cfg.model.student.to_dict() == Config.fromfile(base).model.to_dict(), path
    path = osp.join(
        ROOT, 'configs/distill/seg/nfd/nfd_head-feat_bisenetv2_fast-scnn_1xb8-2k_camvid-'
        '360x480.py')
    assert path in STUDENT_FROM_BASE
    cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        from_recipe, _, _ = build_network(cfg.model.student, 'student')
        torch.manual_seed(0)
        from_path, _, _ = build_network('configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py',
                                        'student')
    a, b = from_recipe.state_dict(), from_path.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert type(from_recipe.data_preprocessor) is type(from_path.data_preprocessor)
    assert from_recipe.data_preprocessor.size == from_path.data_preprocessor.size


# ---------------------------------------------------------------------------------------------
# metafiles (OpenMMLab format) in every config folder
# ---------------------------------------------------------------------------------------------
def _metafiles():
    import yaml
    found = sorted(glob.glob(osp.join(ROOT, 'configs', '**', 'metafile.yml'), recursive=True))
    return {p: yaml.safe_load(open(p)) for p in found}


def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


def test_metafiles_list_every_config_and_parse():
    """Each config folder has a README.md and a metafile.yml whose Collections / Models follow
    the OpenMMLab format; every Config path exists and parses; every config of the folder
    (sub-folders included) is in it exactly once; model names are unique across metafiles."""
    import yaml
    metas = _metafiles()
    folders = {osp.dirname(p) for p in metas}
    listed, names = [], set()
    for path, meta in metas.items():
        assert set(meta) == {'Collections', 'Models'}, path
        collections = {c['Name'] for c in meta['Collections']}
        assert len(collections) == len(meta['Collections']), f'{path}: duplicate collection'
        for c in meta['Collections']:
            assert {'Name', 'Metadata', 'Paper', 'README'} <= set(c), (path, c.get('Name'))
            assert osp.isfile(osp.join(ROOT, c['README'])), (path, c['README'])
        for m in meta['Models']:
            assert {'Name', 'In Collection', 'Config', 'Metadata', 'Results', 'Weights'} <= set(m)
            assert m['Name'] not in names, f"{m['Name']} is in two metafiles"
            names.add(m['Name'])
            assert m['In Collection'] in collections, (path, m['Name'])
            assert m['Name'] == osp.splitext(osp.basename(m['Config']))[0], m['Name']
            cfg_path = osp.join(ROOT, m['Config'])
            assert osp.isfile(cfg_path), f"{path}: {m['Config']} does not exist"
            assert Config.fromfile(cfg_path).get('model') is not None, m['Config']
            for res in m['Results']:
                assert {'Task', 'Dataset', 'Metrics'} <= set(res), (path, m['Name'])
                assert res['Metrics'], (path, m['Name'])
                for v in res['Metrics'].values():
                    assert v == 'not measured' or isinstance(v, (int, float)), (m['Name'], v)
            listed.append(osp.normpath(cfg_path))
        assert osp.isfile(osp.join(osp.dirname(path), 'README.md')), path
    assert len(listed) == len(set(listed)), 'a config is listed twice'
    configs = [
        p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
        if f'{osp.sep}_base_{osp.sep}' not in p
    ]
    assert sorted(map(osp.normpath, configs)) == sorted(listed), \
        f'not in a metafile: {sorted(set(configs) - set(listed))}'
    for p in configs:  # each config is covered by the metafile of its own folder (or a parent)
        assert any(p.startswith(f + osp.sep) for f in folders), p
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)['Import']
    assert sorted(index) == sorted(osp.relpath(p, ROOT) for p in metas)


def test_metafile_numbers_are_the_measured_ones():
    """Every number in a metafile's Results / Metadata is one the README tables (or the shared
    teachers' README) report: a metafile holds only numbers measured here."""
    texts = [_raw(osp.join(ROOT, 'README.md'))]
    for name in ('configs/distill/seg/README.md', 'configs/baselines/README.md'):
        texts.append(_raw(osp.join(ROOT, name)))
    shared = osp.join(ROOT, '..', 'shared', 'teachers', 'README.md')
    if osp.isfile(shared):
        texts.append(_raw(shared))
    text = '\n'.join(texts)
    checked = 0
    for path, meta in _metafiles().items():
        for m in meta['Models']:
            md = {k: v for k, v in m['Metadata'].items() if k != 'Batch Size'}
            for v in list(_numbers(m['Results'])) + list(_numbers(md)):
                spelled = {f'{v}', f'{v:.2f}', f'{v:.3f}'}
                assert any(s in text for s in spelled), f"{path}: {m['Name']} has {v}, " \
                    'which no README table reports'
                checked += 1
    assert checked >= 40
