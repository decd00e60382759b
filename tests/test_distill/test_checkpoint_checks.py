"""A checkpoint of another architecture stops instead of leaving random weights (issue 14, item 1).

``load_checkpoint(strict=False)`` loads a teacher checkpoint that matches 2 of 282 entries with
one warning; :func:`rtkd.distill.checkpoint_checks.check_checkpoint_match` is the check the
distiller runs on it. Real (tiny) mmseg models, their real ``state_dict`` keys.
"""
from __future__ import annotations

import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

import rtkd  # noqa: F401
from rtkd.distill.checkpoint_checks import check_checkpoint_match
from helpers import CONFIG_DIR, seg_model


def state_keys(model_cfg: dict) -> list:
    with DefaultScope.overwrite_default_scope('mmseg'):
        return list(MODELS.build(model_cfg).state_dict())


@pytest.fixture(scope='module')
def teacher_keys() -> list:
    return state_keys(seg_model(4, aux=True))


def test_matching_checkpoint_passes(teacher_keys):
    check_checkpoint_match(teacher_keys, teacher_keys, 'teacher checkpoint')
    # DataParallel prefixes, and no auxiliary head / BN step counters: still the same weights
    trimmed = [
        'module.' + k for k in teacher_keys
        if not k.startswith('auxiliary_head.') and not k.endswith('num_batches_tracked')
    ]
    check_checkpoint_match(teacher_keys, trimmed, 'teacher checkpoint')


def test_other_architecture_stops_listing_unmatched_keys(teacher_keys):
    fast_scnn = Config.fromfile(osp.join(CONFIG_DIR, '_base_/models/fast_scnn.py')).model
    other = state_keys(fast_scnn)
    with pytest.raises(ValueError) as info:
        check_checkpoint_match(teacher_keys, other, "teacher checkpoint 't.pth'")
    msg = str(info.value)
    required = [
        k for k in teacher_keys
        if not k.startswith('auxiliary_head.') and not k.endswith('num_batches_tracked')
    ]
    matched = len(set(required) & set(other))
    assert matched < len(required) // 2
    assert msg.startswith(f"teacher checkpoint 't.pth' matches only {matched} of the "
                          f'{len(required)} required model entries'), msg
    missing = [k for k in required if k not in set(other)]
    assert ', '.join(missing[:10]) + ', ...' in msg  # the first 10 unmatched keys
    assert missing[10] not in msg
    assert 'use a checkpoint of this exact architecture, or checkpoint=None' in msg


def test_threshold(teacher_keys):
    one_short = [k for k in teacher_keys if k != 'backbone.stem.0.weight']
    with pytest.raises(ValueError, match=r'missing: backbone\.stem\.0\.weight - use'):
        check_checkpoint_match(teacher_keys, one_short, 'teacher checkpoint')
    check_checkpoint_match(teacher_keys, one_short, 'teacher checkpoint', min_fraction=0.9)
    with pytest.raises(ValueError, match='min_fraction must be in'):
        check_checkpoint_match(teacher_keys, teacher_keys, 'teacher checkpoint', min_fraction=0)
