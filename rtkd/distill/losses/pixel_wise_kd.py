"""SKD pixel-wise distillation (Liu et al., CVPR 2019)."""
from __future__ import annotations

import torch.nn.functional as F
from mmengine.dist import get_world_size
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_choice, check_positive, check_shapes
from .base import BaseDistillLoss


@MODELS.register_module()
class PixelWiseKD(BaseDistillLoss):
    r"""Pixel-wise distillation of "Structured Knowledge Distillation for Semantic Segmentation"
    (Liu, Chen, Liu, Qin, Luo, Wang, CVPR 2019, arXiv 1903.04197; TPAMI extension 2020).

    Each pixel ``i`` of the score maps is a classification problem; the student's class
    distribution is pulled towards the teacher's:

    .. math::
        L = \frac{T^2}{|R|} \sum_{i \in R} \mathrm{KL}\big(q^t_i \,\|\, q^s_i\big),\quad
        q_i = \mathrm{softmax}(z_i / T)\ \text{over classes}

    What this class computes (defaults): the KL form (``divergence='kl'``), averaged over all
    ``N*H*W`` pixels of the batch (``reduction='mean'``), times ``T^2``. KL is zero when the student
    equals the teacher and is invariant to adding a per-pixel constant across classes.

    Official code (``CriterionPixelWise``): ``sum(-softmax(T) * log_softmax(S)) / (W*H)`` with no
    temperature, i.e. the *cross-entropy*, summed over the batch and averaged over pixels. It
    differs from KL by the teacher entropy (a constant w.r.t. the student, so gradients agree) and
    from our reduction by a factor ``N``. ``divergence='ce', reduction='sum_batch', tau=1.0``
    reproduces the official number exactly. Paper weight: 10 (``loss_weight=10.0``).

    Args:
        tau (float): temperature ``T`` (> 0). Default 1.0 (the paper uses no temperature).
        divergence (str): ``'kl'`` (default, zero at the optimum) or ``'ce'`` (official value).
        reduction (str): ``'mean'`` (divide by ``N*H*W``, default) or ``'sum_batch'`` (divide by
            ``H*W`` only, the official normalisation). ``'sum_batch'`` sums over the *global*
            batch: under DDP each rank's sum is multiplied by the world size, because DDP
            averages the ranks' gradients (2 processes x 4 images then train like 1 x 8).
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self,
                 tau: float = 1.0,
                 divergence: str = 'kl',
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        self.tau = check_positive(name, 'tau', tau)
        self.divergence = check_choice(name, 'divergence', divergence, ('kl', 'ce'))
        self.reduction = check_choice(name, 'reduction', reduction, ('mean', 'sum_batch'))

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted pixel-wise loss.

        Args:
            student (Tensor): student score map (logits), ``N x C x H x W``.
            teacher (Tensor): teacher score map, same shape (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(type(self).__name__, student, teacher, min_dim=4, max_dim=4)
        teacher = teacher.detach()
        n, _, h, w = student.shape
        per_pixel = pixel_divergence(student, teacher, self.tau, self.divergence)
        if self.reduction == 'mean':
            denom = n * h * w
        else:
            denom = h * w / get_world_size()  # DDP averages gradients: undo it for a sum
        return per_pixel.sum() / denom * (self.tau**2) * self.loss_weight


def pixel_divergence(student: Tensor,
                     teacher: Tensor,
                     tau: float = 1.0,
                     divergence: str = 'kl') -> Tensor:
    """Per-pixel divergence of the class distributions (softmax over channels at ``tau``).

    Args:
        student (Tensor): ``N x C x H x W`` logits.
        teacher (Tensor): the same shape; the reference distribution ``q_t``.
        tau (float): temperature.
        divergence (str): ``'kl'``, ``KL(q_t || q_s)``, or ``'ce'``, ``-sum q_t log q_s``.

    Returns:
        Tensor: ``N x H x W`` (not multiplied by ``tau^2``).
    """
    log_q_s = F.log_softmax(student / tau, dim=1)
    log_q_t = F.log_softmax(teacher / tau, dim=1)
    q_t = log_q_t.exp()
    if divergence == 'kl':
        return (q_t * (log_q_t - log_q_s)).sum(dim=1)
    return -(q_t * log_q_s).sum(dim=1)
