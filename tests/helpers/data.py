"""Tiny datasets made on the fly: CamVid (the real folder layout), an image folder, a COCO set.

Self-contained (numpy, and OpenCV when writing): ``tools/benchmarks/ddp_equivalence.py`` loads
this file by path for its tiny CamVid.
"""
from __future__ import annotations

import json
import os
import os.path as osp

import numpy as np


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


def make_tiny_folder(root: str, n: int = 4, size: int = 32, seed: int = 0) -> str:
    """``root/<class>/<i>.png``: class 'dark' (low values) vs 'bright' (high values)."""
    import cv2
    rng = np.random.default_rng(seed)
    for c, (lo, hi) in (('bright', (150, 255)), ('dark', (0, 100))):
        os.makedirs(osp.join(root, c), exist_ok=True)
        for i in range(n):
            img = rng.integers(lo, hi, (size, size, 3)).astype(np.uint8)
            cv2.imwrite(osp.join(root, c, f'{i}.png'), img)
    return root


def make_tiny_coco(root: str, n: int = 4, size: int = 64, seed: int = 0) -> str:
    """Write ``root/images/*.png`` and ``root/ann.json`` (COCO format, 2 classes)."""
    import cv2
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
        for k in range(1 + i % 2):
            x, y = int(rng.integers(0, size // 2)), int(rng.integers(0, size // 2))
            w, h = int(rng.integers(12, size // 2)), int(rng.integers(12, size // 2))
            img[y:y + h, x:x + w] = (200, 60, 60) if k == 0 else (60, 200, 60)
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=i + 1,
                    category_id=k + 1,
                    bbox=[x, y, w, h],
                    area=w * h,
                    iscrowd=0))
        name = f'{i:04d}.png'
        cv2.imwrite(osp.join(root, 'images', name), img)
        images.append(dict(id=i + 1, file_name=name, width=size, height=size))
    cats = [dict(id=1, name='red'), dict(id=2, name='green')]
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    return root
