"""SKD pair-wise distillation (Liu et al., CVPR 2019)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_positive, check_shapes
from .base import BaseDistillLoss


@MODELS.register_module()
class PairWiseKD(BaseDistillLoss):
    r"""Pair-wise distillation of "Structured Knowledge Distillation for Semantic Segmentation"
    (Liu et al., CVPR 2019, arXiv 1903.04197).

    Both feature maps are max-pooled to a coarse grid of ``W' x H'`` nodes (pool size
    ``int(scale * map size)`` per side, stride = pool size, ``ceil_mode=True``, as the official
    ``CriterionPairWiseforWholeFeatAfterPool``), each node's feature vector is L2-normalised, and
    the pair similarities ``a_ij = f_i^T f_j`` of student and teacher are matched:

    .. math::
        L = \frac{1}{N} \sum_{n} \sum_{i,j} \frac{(a^s_{ij} - a^t_{ij})^2}{(W'H')^2}

    This equals the official ``sim_dis_compute`` value (norm computed as
    ``sqrt(sum_c f^2) + 1e-8``). Deliberate difference: the official code detaches the node norm
    before dividing (so no gradient flows through the normalisation); by default we keep the exact
    gradient of the normalised similarity. ``detach_norm=True`` reproduces the official gradient.
    Student and teacher may have different channel counts (similarities are ``W'H' x W'H'``);
    their spatial sizes must match. The loss is invariant to scaling any node's feature vector by
    a positive number. Official weight: 0.5 (``run_train_val.sh``, ``--lambda-pa``).

    Args:
        scale (float): pool size as a fraction of the feature-map size, in (0, 1]. Default 0.5.
        detach_norm (bool): detach the L2 norm as the official code does. Default False.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self,
                 scale: float = 0.5,
                 detach_norm: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        self.scale = check_positive(name, 'scale', scale)
        if self.scale > 1:
            raise ValueError(f'{name}: scale must be in (0, 1] (fraction of the map size), '
                             f'got {scale!r}.')
        self.detach_norm = bool(detach_norm)

    def _pool(self, feat: Tensor) -> Tensor:
        h, w = feat.shape[-2:]
        kernel = (max(1, int(h * self.scale)), max(1, int(w * self.scale)))
        return F.max_pool2d(feat, kernel_size=kernel, stride=kernel, padding=0, ceil_mode=True)

    def _similarity(self, feat: Tensor) -> Tensor:
        feat = feat.float()
        norm = feat.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-8
        if self.detach_norm:
            norm = norm.detach()
        feat = (feat / norm).flatten(2)  # N x C x M
        return torch.bmm(feat.transpose(1, 2), feat)  # N x M x M

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted pair-wise loss.

        Args:
            student (Tensor): student feature map, ``N x C_s x H x W``.
            teacher (Tensor): teacher feature map, ``N x C_t x H x W`` (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(
            type(self).__name__, student, teacher, min_dim=4, max_dim=4, match_channels=False)
        p_s = self._pool(student)
        p_t = self._pool(teacher.detach())
        n, _, h, w = p_t.shape
        err = (self._similarity(p_t) - self._similarity(p_s)).pow(2)
        return err.sum() / float(h * w)**2 / n * self.loss_weight
