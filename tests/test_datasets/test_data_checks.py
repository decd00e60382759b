"""Bad data is found where it is loaded, and by a whole-dataset check (issue 14, item 2).

A label map whose size differs from its image used to pass training (random crops slice image and
label independently) and crash at the first validation with an ``IndexError`` naming no file.
Tiny CamVid folders are made in the test (tests/helpers/data.py).
"""
from __future__ import annotations

import os
import os.path as osp
import runpy

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS, init_default_scope

import rtkd  # noqa: F401
from helpers import CONFIG_DIR, make_tiny_camvid

CAMVID_BASE = osp.join(CONFIG_DIR, '_base_/datasets/camvid.py')
TOOL = osp.join(osp.dirname(CONFIG_DIR), 'tools/misc/check_dataset.py')
NAME = '0001TP_{:06d}.png'


def write_label(root: str, split: str, i: int, label: np.ndarray) -> str:
    """Overwrite one label map of a tiny CamVid; returns its path."""
    path = osp.join(root, split + 'annot', NAME.format(i))
    cv2.imwrite(path, label)
    return path


def camvid(root: str, split: str, pipeline: str) -> object:
    """CamVidDataset of one split with a pipeline of the project's CamVid base."""
    base = Config.fromfile(CAMVID_BASE)
    init_default_scope('mmseg')
    return DATASETS.build(
        dict(
            type='CamVidDataset',
            data_root=root,
            data_prefix=dict(img_path=split, seg_map_path=split + 'annot'),
            pipeline=base[pipeline]))


@pytest.mark.parametrize('pipeline', ['train_pipeline', 'test_pipeline'])
def test_size_mismatch_fails_at_load_naming_both_files(tmp_path, pipeline):
    root = make_tiny_camvid(str(tmp_path / 'camvid'), n_train=2, n_val=1, n_test=1)
    seg = write_label(root, 'train', 1, np.zeros((40, 56), np.uint8))  # images are 48x64
    img = osp.join(root, 'train', NAME.format(1))
    dataset = camvid(root, 'train', pipeline)
    assert dataset[0]['inputs'].shape[0] == 3  # good pairs load as before
    with pytest.raises(ValueError) as info:
        dataset[1]
    msg = str(info.value)
    assert f"label map '{seg}' is 40x56 (HxW) but its image '{img}' is 48x64" in msg, msg
    assert 'tools/misc/check_dataset.py' in msg


def test_check_dataset_lists_every_bad_file(tmp_path, capsys):
    root = make_tiny_camvid(str(tmp_path / 'camvid'), n_train=5, n_val=2, n_test=2)
    good = np.zeros((48, 64), np.uint8)
    small = write_label(root, 'train', 0, good[:40])
    values = write_label(root, 'train', 1, np.where(good == 0, 13, 0).astype(np.uint8))
    missing = osp.join(root, 'trainannot', NAME.format(2))
    os.remove(missing)
    broken = osp.join(root, 'val', NAME.format(1))
    with open(broken, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n truncated')
    cfg_file = str(tmp_path / 'cfg.py')
    with open(cfg_file, 'w') as f:
        f.write(f'_base_ = [{CAMVID_BASE!r}]\n'
                "custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)\n" +
                ''.join(f'{s}_dataloader = dict(dataset=dict(data_root={root!r}))\n'
                        for s in ('train', 'val', 'test')))
    tool = runpy.run_path(TOOL)
    assert tool['main']([cfg_file]) == 1
    out = capsys.readouterr().out
    assert f"train: label map '{small}' is 40x64 (HxW) but its image" in out, out
    assert f"train: label map '{values}' holds values [13]" in out
    assert 'outside the classes 0..10 and the ignore index 255' in out
    assert f"train: label map '{missing}' is missing" in out
    assert f"val: image '{broken}' cannot be read" in out
    assert 'check_dataset: 4 problem(s) in 9 pairs' in out  # void (11 -> 255) is not a problem

    assert tool['main']([cfg_file, '--split', 'test']) == 0
    assert 'check_dataset: 2 pairs checked' in capsys.readouterr().out
