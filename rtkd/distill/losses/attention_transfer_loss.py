"""Activation-based attention transfer (Zagoruyko & Komodakis, ICLR 2017)."""
from __future__ import annotations

import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_choice, check_positive, check_shapes
from .base import BaseDistillLoss


@MODELS.register_module()
class AttentionTransferLoss(BaseDistillLoss):
    r"""Attention transfer of "Paying More Attention to Attention" (Zagoruyko & Komodakis, ICLR
    2017, arXiv 1612.03928).

    Spatial attention map ``Q = vec(mean_c |F_c|^p)`` (``p = 2``), L2-normalised:

    .. math::
        L = \frac{1}{N} \sum_n \Big\| \frac{Q^s_n}{\|Q^s_n\|_2} - \frac{Q^t_n}{\|Q^t_n\|_2}
            \Big\|_2\qquad(\texttt{reduction='paper'}, default)

    The paper's weight is ``beta/2`` with ``beta = 1000``. The official code
    (``at_loss = (at(x) - at(y)).pow(2).mean()``) uses the *squared* distance averaged over all
    ``N*H*W`` entries: ``reduction='official'`` reproduces it (weight 1000 there). Channel counts
    may differ (the map is a channel mean); spatial sizes must match (add a ``ResizeConnector``).
    Invariant to scaling the student feature by a positive constant.

    Args:
        p (float): exponent of ``|F|`` (> 0). Default 2.
        reduction (str): ``'paper'`` (default) or ``'official'``.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self, p: float = 2.0, reduction: str = 'paper', loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        self.p = check_positive(name, 'p', p)
        self.reduction = check_choice(name, 'reduction', reduction, ('paper', 'official'))

    def attention(self, feat: Tensor) -> Tensor:
        """L2-normalised spatial attention map.

        Args:
            feat (Tensor): ``N x C x H x W`` feature map.

        Returns:
            Tensor: ``N x (H*W)`` attention vectors of unit L2 norm.
        """
        return F.normalize(feat.abs().pow(self.p).mean(dim=1).flatten(1), p=2, dim=1)

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted attention-transfer loss.

        Args:
            student (Tensor): student feature map, ``N x C_s x H x W``.
            teacher (Tensor): teacher feature map, ``N x C_t x H x W`` (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(
            type(self).__name__, student, teacher, min_dim=4, max_dim=4, match_channels=False)
        diff = self.attention(student) - self.attention(teacher.detach())
        if self.reduction == 'paper':
            loss = diff.norm(p=2, dim=1).mean()
        else:
            loss = diff.pow(2).mean()
        return loss * self.loss_weight
