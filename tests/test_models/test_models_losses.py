"""Task losses of rtkd.models.losses: OhemCrossEntropyLoss (FANet / BiSeNet OHEM)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmseg.models.losses import CrossEntropyLoss
from mmseg.registry import MODELS
from mmseg.structures.sampler import OHEMPixelSampler

import rtkd  # noqa: F401

IGNORE = 255


def build(**kwargs):
    return MODELS.build(dict(type='OhemCrossEntropyLoss', **kwargs))


def logits_with_probs(probs):
    """1 x 2 x 1 x W logits whose softmax gives class 0 exactly probability ``probs[i]``."""
    p = torch.tensor(probs, dtype=torch.float64)
    z0 = torch.log(p / (1 - p))
    return torch.stack([z0, torch.zeros_like(z0)]).view(1, 2, 1, -1)


def random_batch(seed: int, n: int = 2, c: int = 5, h: int = 16, w: int = 16):
    """Logits (float64) and labels with ignored pixels; about half the pixels are confident
    (true-class probability above 0.7), so both OHEM regimes are reachable."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 2
    label = torch.randint(0, c, (n, h, w), generator=g)
    boost = (torch.rand(n, 1, h, w, generator=g) < 0.5) * 6.0
    logits = logits + boost * F.one_hot(label, c).permute(0, 3, 1, 2)
    label[:, :3] = IGNORE  # ignored rows
    label[0, 5, 5:9] = IGNORE
    return logits, label


def official_ohem(logits, label, thresh: float, n_min: int):
    """The official FANet ``OhemCELoss2D`` rule, written out (for #pixels > n_min)."""
    loss = F.cross_entropy(logits, label, ignore_index=IGNORE, reduction='none').view(-1)
    loss, _ = torch.sort(loss, descending=True)
    if loss[n_min] > -math.log(thresh):
        loss = loss[loss > -math.log(thresh)]
    else:
        loss = loss[:n_min]
    return loss.mean()


def test_value_by_hand() -> None:
    # true-class probabilities 0.9, 0.6, 0.5, 0.2 and one ignored pixel
    logits = logits_with_probs([0.9, 0.6, 0.5, 0.2, 0.3])
    label = torch.tensor([[[0, 0, 0, 0, IGNORE]]])
    # p < 0.7: 0.6, 0.5, 0.2 -> (-ln 0.6 - ln 0.5 - ln 0.2) / 3 = (0.5108 + 0.6931 + 1.6094) / 3
    assert build(thresh=0.7, min_kept=1)(logits, label).item() == pytest.approx(0.937804, abs=1e-6)
    # min_kept 4 > 3 hard pixels: the 4 valid ones, (0.1054 + 0.5108 + 0.6931 + 1.6094) / 4
    assert build(thresh=0.7, min_kept=4)(logits, label).item() == pytest.approx(0.729693, abs=1e-6)
    # min_kept beyond the valid pixels never takes the ignored one
    assert build(thresh=0.7, min_kept=50)(logits, label).item() == pytest.approx(0.729693, abs=1e-6)
    # thresh=None: exactly the min_kept hardest (0.2 and 0.5)
    assert build(
        thresh=None, min_kept=2)(logits, label).item() == pytest.approx(
            (1.609438 + 0.693147) / 2, abs=1e-6)
    # loss_weight multiplies
    assert build(
        thresh=0.7, min_kept=1, loss_weight=0.5)(logits, label).item() == pytest.approx(
            0.937804 / 2, abs=1e-6)


@pytest.mark.parametrize('min_kept', [4, 60, 150])
def test_equals_mmseg_sampler_path_times_valid_over_kept(min_kept) -> None:
    """Same kept pixels as mmseg's OHEMPixelSampler; mmseg divides by #valid (or all pixels)."""
    logits, label = random_batch(0)
    ours = build(thresh=0.7, min_kept=min_kept)
    sampler = OHEMPixelSampler(SimpleNamespace(ignore_index=IGNORE), thresh=0.7, min_kept=min_kept)
    seg_weight = sampler.sample(logits, label.unsqueeze(1))
    valid = label != IGNORE
    keep = ours.kept_mask(
        F.cross_entropy(logits, label, ignore_index=IGNORE, reduction='none'), valid)
    assert torch.equal(keep, seg_weight.bool())
    n_kept, n_valid = int(keep.sum()), int(valid.sum())
    assert n_kept < n_valid  # the cases below differ only through the divisor
    value = ours(logits, label, ignore_index=IGNORE)
    mm_valid = CrossEntropyLoss(avg_non_ignore=True)(
        logits, label, weight=seg_weight, ignore_index=IGNORE)
    mm_all = CrossEntropyLoss(avg_non_ignore=False)(
        logits, label, weight=seg_weight, ignore_index=IGNORE)
    assert value.item() == pytest.approx(mm_valid.item() * n_valid / n_kept, rel=1e-9)
    assert value.item() == pytest.approx(mm_all.item() * label.numel() / n_kept, rel=1e-9)


@pytest.mark.parametrize('seed, min_kept', [(1, 10), (2, 100), (3, 180)])
def test_matches_official_ohem_rule(seed, min_kept) -> None:
    logits, label = random_batch(seed)
    n_min = min_kept * logits.shape[0]  # official n_min = images per GPU x crop area / 16
    expected = official_ohem(logits, label, 0.7, n_min)
    assert build(
        thresh=0.7, min_kept=min_kept)(logits, label).item() == pytest.approx(
            expected.item(), rel=1e-12)


def test_min_kept_rule() -> None:
    logits, label = random_batch(4)
    pixel = F.cross_entropy(logits, label, ignore_index=IGNORE, reduction='none')
    valid = label != IGNORE
    n_hard = int((pixel[valid] > -math.log(0.7)).sum())
    n = logits.shape[0]
    # fewer hard pixels than n_min: exactly n_min = min_kept x batch, the largest losses
    min_kept = n_hard // n + 20
    keep = build(thresh=0.7, min_kept=min_kept).kept_mask(pixel, valid)
    assert int(keep.sum()) == min_kept * n
    assert pixel[keep].min() >= pixel[valid & ~keep].max()
    # more hard pixels than n_min: all the hard ones, nothing else
    keep = build(thresh=0.7, min_kept=1).kept_mask(pixel, valid)
    assert int(keep.sum()) == n_hard and bool((pixel[keep] > -math.log(0.7)).all())
    # thresh=None: exactly min_kept per image
    keep = build(thresh=None, min_kept=7).kept_mask(pixel, valid)
    assert int(keep.sum()) == 7 * n
    # the mean is over the kept pixels
    loss = build(thresh=0.7, min_kept=1)(logits, label)
    assert loss.item() == pytest.approx(pixel[pixel > -math.log(0.7)].mean().item(), rel=1e-12)


def test_ignore_index() -> None:
    logits, label = random_batch(5)
    loss = build(thresh=0.7, min_kept=10_000)
    ignored = label == IGNORE
    changed = logits.clone()
    changed[:, 0][ignored] = 50.0  # anything at ignored pixels
    assert loss(changed, label).item() == pytest.approx(loss(logits, label).item(), rel=1e-12)
    x = logits.clone().requires_grad_(True)
    loss(x, label).backward()
    assert x.grad.permute(0, 2, 3, 1)[ignored].abs().max() == 0
    assert x.grad.permute(0, 2, 3, 1)[~ignored].abs().max() > 0
    # a caller's ignore_index (what an mmseg decode head passes) wins over the configured one
    other = label.clone()
    other[ignored] = 4
    assert build(thresh=0.7, min_kept=1, ignore_index=4)(logits, other, ignore_index=IGNORE) \
        .item() != pytest.approx(loss(logits, label).item())
    relabel = torch.where(ignored, torch.full_like(label, 7), label)
    assert build(thresh=0.7, min_kept=1, ignore_index=7)(logits, relabel).item() == \
        pytest.approx(build(thresh=0.7, min_kept=1)(logits, label).item(), rel=1e-12)
    # no valid pixel: 0, still differentiable
    x = logits.clone().requires_grad_(True)
    zero = loss(x, torch.full_like(label, IGNORE))
    zero.backward()
    assert zero.item() == 0 and x.grad.abs().max() == 0


def test_reductions_and_misuse() -> None:
    logits, label = random_batch(6)
    loss = build(thresh=0.7, min_kept=1)
    per_pixel = loss(logits, label, reduction_override='none')
    assert per_pixel.shape == label.shape
    keep = per_pixel > 0
    assert loss(
        logits, label, reduction_override='sum').item() == pytest.approx(
            per_pixel.sum().item(), rel=1e-12)
    assert loss(logits, label).item() == pytest.approx(per_pixel[keep].mean().item(), rel=1e-12)
    assert loss.loss_name == 'loss_ce'
    with pytest.raises(ValueError, match='sampler'):
        loss(logits, label, weight=torch.ones_like(logits[:, 0]))
    with pytest.raises(ValueError, match='probability'):
        build(thresh=1.5)
    with pytest.raises(ValueError, match='min_kept'):
        build(min_kept=0)
