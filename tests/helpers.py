"""Shared test helpers (importable from any test module and from processes the tests spawn):
the repository paths and a tiny CamVid in the real folder layout, made on the fly.

Kept out of ``conftest.py`` on purpose: the repository root has a ``conftest.py`` too, so
``from conftest import ...`` resolves to whichever comes first on ``sys.path`` (in a spawned
worker process: the root one).
"""
from __future__ import annotations

import os
import os.path as osp

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(ROOT, 'configs')


def make_tiny_camvid(root: str,
                     n_train: int = 4,
                     n_val: int = 2,
                     n_test: int = 2,
                     h: int = 48,
                     w: int = 64,
                     seed: int = 0) -> str:
    """Write a CamVid-shaped folder (train/ trainannot/ val/ valannot/ test/ testannot/).

    Images are RGB PNGs whose colour depends on the label (so a model can learn something);
    labels hold 0..10 plus void (11) in the bottom rows.

    Args:
        root (str): folder to create.
        n_train, n_val, n_test (int): images per split.
        h, w (int): image size.
        seed (int): random seed.

    Returns:
        str: ``root``.
    """
    import cv2
    rng = np.random.default_rng(seed)
    for split, n in (('train', n_train), ('val', n_val), ('test', n_test)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        os.makedirs(osp.join(root, split + 'annot'), exist_ok=True)
        for i in range(n):
            label = np.zeros((h, w), np.uint8)
            for k in range(11):  # vertical stripes of every class, random order
                label[:, k * w // 11:(k + 1) * w // 11] = (k + i) % 11
            label[-4:, :] = 11  # void
            img = (label[..., None] * np.array([23, 57, 91]) % 256).astype(np.uint8)
            img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
            name = f'0001TP_{i:06d}.png'
            cv2.imwrite(osp.join(root, split, name), img)
            cv2.imwrite(osp.join(root, split + 'annot', name), label)
    return root


def tiny_data_options(data_root: str, batch_size: int = 2) -> dict:
    """``cfg-options`` that point a CamVid config at a tiny folder, with no worker processes.

    Args:
        data_root (str): folder made by :func:`make_tiny_camvid`.
        batch_size (int): training batch size.

    Returns:
        dict: keys in mmengine ``merge_from_dict`` form.
    """
    opts = {}
    for split in ('train', 'val', 'test'):
        key = f'{split}_dataloader'
        opts[f'{key}.dataset.data_root'] = data_root
        opts[f'{key}.num_workers'] = 0
        opts[f'{key}.persistent_workers'] = False
    opts['train_dataloader.batch_size'] = batch_size
    return opts


def write_teacher(root: str, model: dict, scope: str = 'mmseg') -> tuple:
    """Build a (randomly initialised) teacher and save its config and checkpoint under ``root``.

    Args:
        root (str): an existing folder.
        model (dict): the teacher's model config.
        scope (str): its registry scope.

    Returns:
        tuple[str, str]: the config path and the checkpoint path, as a recipe's ``teacher=dict(
        config=..., checkpoint=...)`` takes them.
    """
    import torch
    from mmengine.registry import MODELS, DefaultScope
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = {scope!r}\nmodel = {model!r}\n")
    with DefaultScope.overwrite_default_scope(scope):
        teacher = MODELS.build(model)
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    return cfg_path, ckpt


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

    Cheap enough for test collection (no ``Config.fromfile``); tests/test_distiller_recipes.py
    checks it against the parsed model type of every config.

    Args:
        path (str): a config file.

    Returns:
        bool: True for ``type='Distiller'`` / ``type='CohortDistiller'`` recipes.
    """
    import re
    with open(path) as f:
        text = f.read()
    if any(re.search(rf"type\s*=\s*['\"]{t}['\"]", text) for t in DISTILLER_TYPES):
        return True
    m = re.search(r'_base_\s*=\s*\[([^\]]*)\]', text) or re.search(r"_base_\s*=\s*('[^']*')", text)
    bases = re.findall(r"'([^']+)'", m.group(1)) if m else []
    return any(
        is_distill_recipe(osp.normpath(osp.join(osp.dirname(path), b))) for b in bases
        if '::' not in b and b.endswith('.py'))
