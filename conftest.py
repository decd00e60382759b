"""Repository-wide pytest set-up: the ``integration`` marker, set from test-file names and fixtures.

``integration`` tests run an mmengine ``Runner`` (training / testing / resuming on a tiny dataset),
``torchrun`` or a command-line tool end to end; ``make test-fast`` (``pytest -m "not integration"``)
runs everything else in under a minute, ``make test`` runs all. A test is marked when

* its file name is in :data:`INTEGRATION_FILES` (files made of Runner/torchrun/tool tests),
* it uses a fixture in :data:`INTEGRATION_FIXTURES` (tiny datasets exist only to feed a Runner), or
* its function name matches :data:`INTEGRATION_NAMES` (recipes stepped end to end, ONNX exports,
  every config built, command-line tools run in a subprocess).

New Runner tests: use one of those fixtures, add the file here, or mark the test itself with
``@pytest.mark.integration``.

Living at the repository root, this file also puts the root on ``sys.path`` (pytest's rootdir
``conftest.py`` rule), as running from the root does for mmseg-style ``projects.<name>`` imports.
"""
from __future__ import annotations

import fnmatch
import os.path as osp

import pytest

#: test files (base names, wherever they live under tests/) whose tests are all integration tests
INTEGRATION_FILES = frozenset({
    'test_distiller_runner.py',  # Runner train/test/resume, DDP with torchrun
    'test_distill_cls.py',  # tiny mmpretrain teachers, Runner
    'test_distill_det.py',  # tiny COCO, mmdet teachers, Runner
    'test_teacher_cache.py',  # cache tool + Runner + DDP
    'test_runtime_guards.py',  # Runner divergence / worker guards, train script exit code
    'test_recipe_fidelity.py',  # recipes stepped through the Runner
    'test_tools_class_weights.py',  # the class-weights tool over tiny datasets
    'test_tools_stats_onnx.py',  # model-stats and ONNX-export tools end to end
    'test_equivalence.py',  # DDP (torchrun) vs 1 process, resume vs uninterrupted
})

#: test-function name patterns (fnmatch, parameters stripped) of integration tests in files that
#: otherwise hold unit tests
INTEGRATION_NAMES = (
    '*runner*',  # ..._run_two_runner_iterations, ..._runner_uses_the_rule
    '*recipe*step*',  # a recipe built and stepped: ..._recipe_builds_and_steps
    '*trains*',  # ..._trains_a_step, ..._config_trains_two_iterations
    '*onnx*',  # ONNX export + onnxruntime
    '*ddp*',  # several processes (torchrun / gloo)
    '*gloo*',
    '*distributed*',
    'test_every_config_builds',  # config sweeps: every config built / every recipe parsed
    'test_recipes_parse_and_follow_naming',
    'test_tools_*',  # a tool run in a subprocess
)

#: fixtures that make a test an integration test
INTEGRATION_FIXTURES = frozenset({'tiny_camvid', 'tiny_coco', 'tiny_folder'})


def is_integration(item) -> bool:
    """Whether a collected test item is an integration test (see the module docstring)."""
    if item.get_closest_marker('integration') is not None:
        return True
    if osp.basename(str(item.fspath)) in INTEGRATION_FILES:
        return True
    if INTEGRATION_FIXTURES & set(getattr(item, 'fixturenames', ())):
        return True
    name = getattr(item, 'originalname', None) or item.name.split('[')[0]
    return any(fnmatch.fnmatch(name, pat) for pat in INTEGRATION_NAMES)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_integration(item):
            item.add_marker(pytest.mark.integration)
