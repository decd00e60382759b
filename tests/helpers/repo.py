"""The repository's paths, its tools as modules, and what the tests know about its recipes."""
from __future__ import annotations

import os.path as osp
import re

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs')
#: the ``_base_`` files of the tiny CamVid Runner configs (:mod:`helpers.runner`,
#: :mod:`helpers.teacher_cache`)
CAMVID_BASES = [
    osp.join(ROOT, 'configs/_base_', p)
    for p in ('datasets/camvid.py', 'default_runtime.py', 'schedules/schedule_poly.py')
]
#: the naming scheme of the segmentation distillation recipes (configs/distill/seg/<method>/)
RECIPE_NAME = re.compile(
    r'^(?P<method>[a-z0-9-]+)_(?P<where>[a-z0-9-]+)_(?P<teacher>[a-z0-9-]+)_'
    r'(?P<student>[a-z0-9-]+)_(?P<sched>(?:\d+xb\d+-)?\d+k)_(?P<data>camvid|cityscapes)-'
    r'\d+x\d+(?:_[a-z0-9-]+)?\.py$')


def load_tool(rel: str):
    """Import a script of the repository (e.g. ``'tools/misc/install_teacher.py'``) as a module.

    Args:
        rel (str): its path relative to the repository root.

    Returns:
        module: the executed script (``main(argv)`` and its functions are attributes).
    """
    import importlib.util
    spec = importlib.util.spec_from_file_location(osp.basename(rel)[:-3], osp.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


DISTILLER_TYPES = ('Distiller', 'CohortDistiller')


def is_distill_recipe(path: str) -> bool:
    """Whether a config (or one of its local ``_base_`` files) builds a distiller, from the text.

    Cheap enough for test collection (no ``Config.fromfile``);
    tests/test_distill/test_distiller_recipes.py checks it against the parsed model type of every
    config.

    Args:
        path (str): a config file.

    Returns:
        bool: True for ``type='Distiller'`` / ``type='CohortDistiller'`` recipes.
    """
    with open(path) as f:
        text = f.read()
    if any(re.search(rf"type\s*=\s*['\"]{t}['\"]", text) for t in DISTILLER_TYPES):
        return True
    m = re.search(r'_base_\s*=\s*\[([^\]]*)\]', text) or re.search(r"_base_\s*=\s*('[^']*')", text)
    bases = re.findall(r"'([^']+)'", m.group(1)) if m else []
    return any(
        is_distill_recipe(osp.normpath(osp.join(osp.dirname(path), b))) for b in bases
        if '::' not in b and b.endswith('.py'))
