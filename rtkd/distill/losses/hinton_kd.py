"""Response-based knowledge distillation (Hinton et al., 2015)."""
from __future__ import annotations

import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_positive, check_shapes
from .base import BaseDistillLoss


@MODELS.register_module()
class HintonKD(BaseDistillLoss):
    r"""Soft-target distillation, "Distilling the Knowledge in a Neural Network" (Hinton, Vinyals,
    Dean, NIPS-W 2015, arXiv 1503.02531).

    .. math::
        L = \frac{T^2}{M} \sum_{m} \mathrm{KL}\big(\mathrm{softmax}(z^t_m / T) \,\|\,
            \mathrm{softmax}(z^s_m / T)\big)

    where the softmax runs over the class dimension (dim 1) and ``m`` runs over the ``M`` samples
    (``N x C`` logits; "batchmean") or, for dense ``N x C x H x W`` logits, over the ``M = N*H*W``
    pixels. The ``T^2`` factor keeps gradient magnitudes independent of ``T`` (paper, Sec. 2).
    This is the KL form, so the loss is exactly 0 when the student equals the teacher, and it is
    invariant to adding a per-sample (per-pixel) constant to either logit vector.

    Args:
        tau (float): temperature ``T`` (> 0). Default 1.0 (common classification recipes use 4).
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        self.tau = check_positive(type(self).__name__, 'tau', tau)

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted KD loss.

        Args:
            student (Tensor): student logits, ``N x C`` or ``N x C x H x W``.
            teacher (Tensor): teacher logits, same shape (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(type(self).__name__, student, teacher, min_dim=2, max_dim=4)
        teacher = teacher.detach()
        log_p_s = F.log_softmax(student / self.tau, dim=1)
        log_p_t = F.log_softmax(teacher / self.tau, dim=1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)  # one value per sample / pixel
        return kl.mean() * (self.tau**2) * self.loss_weight
