"""Detection helpers for distillation: FGFI imitation masks from a detector's prior generator.

FGFI (Wang, Yuan, Zhang, Feng, "Distilling Object Detectors with Fine-grained Feature Imitation",
CVPR 2019) imitates the teacher only near objects. For every ground-truth box ``g`` it computes
the IoU of ``g`` with every anchor of the feature maps, takes ``M_g = max IoU`` and keeps the
anchors with ``IoU > psi * M_g``; the union over boxes and over the ``A`` anchors of a location
gives an ``H x W`` mask per feature level.

Anchors come from mmdet's own prior generator (``AnchorGenerator.grid_priors``) and IoUs from
``mmdet.structures.bbox.bbox_overlaps``; nothing here re-implements them. Anchor-free detectors
(point generators such as ``MlvlPointGenerator`` in FCOS/ATSS-free heads) have no anchors; for
them :func:`gt_box_masks` is the documented fallback: a location is masked when its prior point
lies inside a ground-truth box.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor


def is_anchor_generator(prior_generator) -> bool:
    """Whether ``prior_generator`` produces boxes (anchors) rather than points.

    Args:
        prior_generator: an mmdet prior generator object.

    Returns:
        bool: True for ``AnchorGenerator`` and its subclasses (SSD, YOLO, legacy ...).
    """
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    return isinstance(prior_generator, AnchorGenerator)


def _box_tensor(boxes) -> Tensor:
    from mmdet.structures.bbox import get_box_tensor
    return get_box_tensor(boxes).float().reshape(-1, 4)


def gt_boxes_of(data_samples: Sequence) -> List[Tensor]:
    """Ground-truth boxes (``G x 4``, x1y1x2y2, input-image pixels) of each data sample.

    Args:
        data_samples (Sequence[DetDataSample]): samples with ``gt_instances.bboxes``.

    Returns:
        list[Tensor]: one ``G_i x 4`` float tensor per sample (``G_i`` may be 0).
    """
    out = []
    for i, sample in enumerate(data_samples):
        inst = getattr(sample, 'gt_instances', None)
        if inst is None or 'bboxes' not in inst:
            raise ValueError(f'data sample {i} has no gt_instances.bboxes; FGFI needs detection '
                             f'samples (mmdet PackDetInputs with LoadAnnotations(with_bbox=True)).')
        out.append(_box_tensor(inst.bboxes))
    return out


def anchor_imitation_masks(prior_generator,
                           featmap_sizes: Sequence[Tuple[int, int]],
                           gt_bboxes: Sequence[Tensor],
                           psi: float = 0.5,
                           levels: Optional[Sequence[int]] = None,
                           device: Optional[torch.device] = None) -> List[Tensor]:
    """FGFI imitation masks (one ``N x H_l x W_l`` bool tensor per requested level).

    For each image and each GT box ``g``: ``IoU_g`` over all anchors of the requested levels,
    ``M_g = max IoU_g`` (taken over all requested levels together), keep anchors with
    ``IoU_g > psi * M_g`` (and ``M_g > 0``); a location is masked if any of its ``A`` anchors is
    kept for any box.

    Args:
        prior_generator (AnchorGenerator): the student's anchor generator
            (e.g. ``student.bbox_head.prior_generator``).
        featmap_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` of each requested level.
        gt_bboxes (Sequence[Tensor]): per image ``G_i x 4`` boxes (x1, y1, x2, y2).
        psi (float): threshold factor in (0, 1]; paper value 0.5.
        levels (Sequence[int] | None): generator level index of each feature map
            (default ``0..L-1``).
        device (torch.device | None): device of the masks.

    Returns:
        list[Tensor]: masks, ``N x H_l x W_l`` bool, one per requested level.
    """
    from mmdet.structures.bbox import bbox_overlaps
    levels = list(range(len(featmap_sizes))) if levels is None else list(levels)
    if len(levels) != len(featmap_sizes):
        raise ValueError(f'got {len(featmap_sizes)} feature maps but {len(levels)} level indices.')
    n_gen = prior_generator.num_levels
    if max(levels) >= n_gen:
        raise ValueError(f'feature level {max(levels)} requested but the anchor generator has '
                         f'{n_gen} levels; tap as many FPN levels as the head uses.')
    anchors, counts = [], []
    for lvl, (h, w) in zip(levels, featmap_sizes):
        a = prior_generator.single_level_grid_priors((h, w), lvl, device=device or 'cpu')
        a = _box_tensor(a)
        anchors.append(a)
        counts.append(a.shape[0])
    all_anchors = torch.cat(anchors)
    per_level: List[List[Tensor]] = [[] for _ in levels]
    for boxes in gt_bboxes:
        boxes = boxes.to(all_anchors.device)
        if boxes.numel() == 0:
            keep = all_anchors.new_zeros(all_anchors.shape[0], dtype=torch.bool)
        else:
            iou = bbox_overlaps(boxes, all_anchors)  # G x sum(H*W*A)
            best = iou.max(dim=1, keepdim=True).values
            keep = ((iou > psi * best) & (best > 0)).any(dim=0)
        for k, (chunk, (h, w)) in enumerate(zip(keep.split(counts), featmap_sizes)):
            per_level[k].append(chunk.view(h, w, -1).any(dim=-1))
    return [torch.stack(m) for m in per_level]


def gt_box_masks(prior_generator,
                 featmap_sizes: Sequence[Tuple[int, int]],
                 gt_bboxes: Sequence[Tensor],
                 levels: Optional[Sequence[int]] = None,
                 device: Optional[torch.device] = None) -> List[Tensor]:
    """Anchor-free fallback: mask locations whose prior point lies inside a GT box.

    Args:
        prior_generator: a point generator (``MlvlPointGenerator``) or any generator with
            ``strides``; points are the generator's own grid priors when it makes points,
            otherwise cell centres ``((x + 0.5) * s_x, (y + 0.5) * s_y)``.
        featmap_sizes (Sequence[tuple[int, int]]): ``(H_l, W_l)`` per requested level.
        gt_bboxes (Sequence[Tensor]): per image ``G_i x 4`` boxes.
        levels (Sequence[int] | None): generator level of each feature map (default ``0..L-1``).
        device (torch.device | None): device of the masks.

    Returns:
        list[Tensor]: ``N x H_l x W_l`` bool masks.
    """
    levels = list(range(len(featmap_sizes))) if levels is None else list(levels)
    out = []
    for lvl, (h, w) in zip(levels, featmap_sizes):
        if is_anchor_generator(prior_generator):
            sw, sh = prior_generator.strides[lvl]
            ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * sh
            xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * sw
            yy, xx = torch.meshgrid(ys, xs, indexing='ij')
            pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)
        else:
            pts = prior_generator.single_level_grid_priors((h, w), lvl, device=device or 'cpu')
            pts = pts[:, :2].float()
        masks = []
        for boxes in gt_bboxes:
            boxes = boxes.to(pts.device)
            if boxes.numel() == 0:
                masks.append(torch.zeros(h, w, dtype=torch.bool, device=pts.device))
                continue
            x, y = pts[:, None, 0], pts[:, None, 1]
            inside = (x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & \
                (y <= boxes[:, 3])
            masks.append(inside.any(dim=1).view(h, w))
        out.append(torch.stack(masks))
    return out
