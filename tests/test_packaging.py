"""Packaging as OpenMMLab users expect it.

Version ranges in ``install_requires`` and the pins in one place (``requirements/constraints.txt``);
``rtkd::<folder>/<file>.py`` config paths as a ``_base_`` and as a distiller's ``student=``, in this
checkout and after a plain (non-editable) install into a temporary folder; only the ``rtkd``
package installed (not ``projects``); the model index mmengine reads for ``pkg::`` paths; tools
that import the installed ``rtkd`` instead of editing ``sys.path``; the ``integration`` marker
rules of the root ``conftest.py``; a tree the pre-commit linters pass.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest
import yaml
from mmengine.config import Config
from packaging.requirements import Requirement

from helpers import ROOT

RTKD_CFG = 'rtkd::fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py'


def read_requirements(path: str) -> dict:
    """``{name: Requirement}`` of a requirements file (comments and pip options skipped)."""
    out = {}
    with open(osp.join(ROOT, path)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                req = Requirement(line)
                out[req.name.lower()] = req
    return out


def pinned_versions() -> dict:
    """``{name: version}`` of every ``==`` pin in the constraints file."""
    pins = {}
    for name, req in read_requirements('requirements/constraints.txt').items():
        exact = [s.version for s in req.specifier if s.operator == '==']
        if exact:
            pins[name] = exact[0]
    return pins


def write_user_config(folder: str) -> str:
    """A user config that inherits a shipped rtkd config through ``rtkd::`` and changes one key."""
    path = osp.join(folder, 'user_cfg.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = ['{RTKD_CFG}']\ntrain_cfg = dict(max_iters=7)\n")
    return path


def test_requirements_are_ranges_pinned_once_in_constraints():
    """install_requires holds ranges; every OpenMMLab pin lives in constraints.txt and lies in
    the range; setup_env.sh installs names with -c constraints (no pins of its own)."""
    runtime = read_requirements('requirements/runtime.txt')
    mim = read_requirements('requirements/mminstall.txt')
    pins = pinned_versions()
    for name, req in runtime.items():
        assert not any(s.operator in ('==', '===') for s in req.specifier), (
            f'{name} is pinned in runtime.txt; pin it in requirements/constraints.txt instead')
    for name in ('mmengine', 'mmsegmentation', 'mmdet', 'mmpretrain', 'mmcv'):
        req = runtime.get(name) or mim.get(name)
        assert req is not None, f'{name} has no range in runtime.txt / mminstall.txt'
        assert req.specifier, f'{name} has no version range'
        assert name in pins, f'{name} is not pinned in constraints.txt'
        assert req.specifier.contains(
            pins[name],
            prereleases=True), (f'pinned {name}=={pins[name]} is outside the range {req.specifier}')
    with open(osp.join(ROOT, 'tools', 'setup_env.sh')) as f:
        setup_env = f.read()
    installs = [ln for ln in setup_env.splitlines() if re.search(r'\binstall\b', ln)]
    assert installs and all(re.search(r'==\s*\d', ln) is None for ln in installs), [
        ln for ln in installs if re.search(r'==\s*\d', ln)
    ]
    assert 'requirements/constraints.txt' in setup_env
    # the top-level requirements.txt only includes the files under requirements/
    with open(osp.join(ROOT, 'requirements.txt')) as f:
        includes = [ln.split()[1] for ln in f if ln.startswith('-r')]
    assert 'requirements/runtime.txt' in includes
    assert all(osp.isfile(osp.join(ROOT, p)) for p in includes)


def test_rtkd_config_path_in_this_checkout(tmp_path):
    """`rtkd::` works as a _base_ (read like a local base: no `_scope_`) and through mmengine's
    get_config (the distiller's student= route); clear errors for wrong paths."""
    import mmengine.hub

    import rtkd.config_paths as cp
    cfg = Config.fromfile(write_user_config(str(tmp_path)))
    assert cfg.model.backbone.type == 'RTFastSCNN'
    assert cfg.train_cfg.max_iters == 7 and cfg.default_scope == 'mmseg'
    assert '_scope_' not in cfg.model and '_scope_' not in cfg.train_dataloader.dataset
    assert cp.resolve(RTKD_CFG) == osp.join(ROOT, 'configs', 'fast_scnn',
                                            'fast-scnn_1xb8-6k_camvid-240x320.py')
    student = mmengine.hub.get_config(RTKD_CFG)
    assert student.model.backbone.type == 'RTFastSCNN'
    with pytest.raises(FileNotFoundError, match='not a config shipped with rtkd'):
        cp.resolve('rtkd::fast_scnn/no-such-config.py')
    with pytest.raises(ValueError, match='not an rtkd:: config path'):
        cp.resolve('mmseg::fastscnn/x.py')


def test_student_given_as_rtkd_path_builds():
    """A distiller's `student='rtkd::...'` spec builds the shipped network."""
    from rtkd.distill.builder import build_network
    model, ckpt, scope = build_network(RTKD_CFG, 'student')
    assert type(model.backbone).__name__ == 'RTFastSCNN'
    assert ckpt is None and scope == 'mmseg'


def test_model_index_lists_every_metafile():
    """mmengine reads `.mim/model-index.yml` for every `pkg::` path; it must list each config
    folder's metafile.yml and nothing that does not exist."""
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    listed = set(index['Import'] or [])
    found = {
        osp.relpath(p, ROOT)
        for p in glob.glob(osp.join(ROOT, 'configs', '**', 'metafile.yml'), recursive=True)
    }
    assert listed == found, f'model-index.yml Import differs: missing {sorted(found - listed)}, ' \
                            f'absent {sorted(listed - found)}'


def test_tools_do_not_edit_sys_path():
    """Tools import the installed rtkd; none puts the repository on sys.path."""
    offenders = []
    for path in glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True):
        with open(path) as f:
            if re.search(r'sys\.path\.(insert|append|extend)|sys\.path\s*[+]?=', f.read()):
                offenders.append(osp.relpath(path, ROOT))
    assert not offenders, offenders


LINTERS = {
    'flake8': ['flake8', '.'],
    'isort': ['isort', '--check-only', '--diff', '.'],
    'yapf': [
        'yapf', '--diff', '--recursive', '--exclude', 'rtkd/.mim/*', 'rtkd', 'tools', 'tests',
        'projects', 'configs', 'setup.py', 'conftest.py'
    ],
    'codespell': ['codespell_lib'],
}


@pytest.mark.integration
@pytest.mark.parametrize('tool', sorted(LINTERS))
def test_tree_passes_the_pre_commit_linters(tool):
    """flake8, isort, yapf and codespell (configured in setup.cfg, as in .pre-commit-config.yaml)
    find nothing: the tree stays as `make format` leaves it."""
    proc = subprocess.run(
        [sys.executable, '-m'] + LINTERS[tool], cwd=ROOT, text=True, capture_output=True)
    out = (proc.stdout + proc.stderr).strip()
    if tool == 'yapf':  # yapf --diff exits 0 even when it would reformat
        assert '(reformatted)' not in out, out[:3000]
    assert proc.returncode == 0, f'{tool} ({proc.returncode}); `make format` fixes most:\n' + \
        out[:3000]


def test_integration_marker_rules_name_existing_tests():
    """Every file the root conftest.py marks as integration exists (a renamed Runner test must
    not silently join `make test-fast`), and the marker is declared in pytest.ini."""
    spec = importlib.util.spec_from_file_location('rtkd_root_conftest',
                                                  osp.join(ROOT, 'conftest.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = {
        osp.basename(p)
        for p in glob.glob(osp.join(ROOT, 'tests', '**', 'test_*.py'), recursive=True)
    }
    assert mod.INTEGRATION_FILES and mod.INTEGRATION_FILES <= names, \
        sorted(mod.INTEGRATION_FILES - names)

    class Item:
        fspath = osp.join(ROOT, 'tests', 'test_models', 'test_layers.py')
        fixturenames = ('tmp_path', )
        name = originalname = 'test_dsconv_shapes'

        def get_closest_marker(self, name):
            return None

    assert not mod.is_integration(Item())
    Item.fixturenames = ('tiny_camvid', 'tmp_path')
    assert mod.is_integration(Item())
    Item.fixturenames, Item.fspath = (), osp.join(ROOT, 'tests', 'test_distill',
                                                  'test_distiller_runner.py')
    assert mod.is_integration(Item())
    Item.fspath = osp.join(ROOT, 'tests', 'test_models', 'test_layers.py')
    Item.name = 'test_dkd_recipe_builds_and_steps[cfg0]'
    Item.originalname = 'test_dkd_recipe_builds_and_steps'
    assert mod.is_integration(Item())
    with open(osp.join(ROOT, 'pytest.ini')) as f:
        ini = f.read()
    assert re.search(r'^\s+integration:', ini, re.M) and 'projects' in ini


SHIPPED_CHECK = r'''
import json, os, sys
import rtkd, rtkd.config_paths as cp
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
cfg = Config.fromfile(sys.argv[1])
init_default_scope(cfg.default_scope)
model = MODELS.build(cfg.model)
student = get_config(sys.argv[2])
print(json.dumps(dict(
    rtkd_file=rtkd.__file__, resolved=cp.resolve(sys.argv[2]),
    backbone=type(model.backbone).__name__,
    max_iters=cfg.train_cfg.max_iters, scope=cfg.model.get('_scope_'),
    student_backbone=student.model.backbone.type)))
'''


@pytest.mark.integration
def test_non_editable_install_ships_configs(tmp_path):
    """`pip install --target` of a copy of the sources: only `rtkd` is installed (with
    `.mim/configs`), and a process that sees only that install resolves `rtkd::` as a _base_
    and as a student config from the installed files."""
    src, target = tmp_path / 'src', tmp_path / 'target'
    src.mkdir()
    for name in ('setup.py', 'MANIFEST.in', 'README.md', 'model-index.yml', 'requirements.txt'):
        shutil.copy(osp.join(ROOT, name), src / name)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim')
    for name in ('rtkd', 'configs', 'tools', 'requirements', 'projects'):
        shutil.copytree(osp.join(ROOT, name), src / name, ignore=ignore)
    env = dict(os.environ, OMP_NUM_THREADS='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    out = subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation',
        '--no-compile', '--target',
        str(target),
        str(src)
    ],
                         capture_output=True,
                         text=True,
                         env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    top = sorted(p for p in os.listdir(target) if not p.endswith('.dist-info'))
    assert top == ['rtkd'], top  # not `projects`, `tests`, `configs` or `tools`
    dist_info = glob.glob(str(target / 'rtkd-*.dist-info'))[0]
    with open(osp.join(dist_info, 'top_level.txt')) as f:
        assert f.read().split() == ['rtkd']
    mim = target / 'rtkd' / '.mim'
    assert (mim / 'configs' / 'fast_scnn' / 'fast-scnn_1xb8-6k_camvid-240x320.py').is_file()
    assert (mim / 'configs' / '_base_' / 'default_runtime.py').is_file()
    assert (mim / 'model-index.yml').is_file() and (mim / 'tools' / 'train.py').is_file()

    # -S: no .pth files, so the checkout's editable install is invisible; the dependencies come
    # from the environment's site-packages, rtkd only from the target folder
    site = os.pathsep.join(
        dict.fromkeys([sysconfig.get_paths()['purelib'],
                       sysconfig.get_paths()['platlib']]))
    user_dir = tmp_path / 'user'
    user_dir.mkdir()
    env = dict(env, PYTHONPATH=os.pathsep.join([str(target), site]))
    out = subprocess.run(
        [sys.executable, '-S', '-c', SHIPPED_CHECK,
         write_user_config(str(user_dir)), RTKD_CFG],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(user_dir),
        timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res['rtkd_file'].startswith(str(target)), res
    assert res['resolved'].startswith(str(mim / 'configs')), res
    assert res['backbone'] == 'RTFastSCNN' and res['student_backbone'] == 'RTFastSCNN'
    assert res['max_iters'] == 7 and res['scope'] is None
