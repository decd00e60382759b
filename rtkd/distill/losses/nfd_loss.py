"""Normalized feature distillation, NFD (Liu et al., 2022)."""
from __future__ import annotations

from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_choice, check_positive, check_shapes
from .base import BaseDistillLoss


@MODELS.register_module()
class NFDLoss(BaseDistillLoss):
    r"""Normalized feature distillation, "Normalized Feature Distillation for Semantic
    Segmentation" (Tao Liu, Xi Yang, Chenshu Chen, arXiv 2207.05256, 2022).

    The student is kept from imitating the *magnitude* of the teacher's response: both maps are
    standardised with their *own* statistics and then compared with an L2 distance:

    .. math::
        \bar F = \frac{F - \mu}{\sqrt{\sigma^2 + \epsilon}},\qquad
        L = \frac{1}{|F|} \sum \big(\bar F^s - \bar F^t\big)^2

    Statistics ``(mu, sigma)`` are taken per sample and per channel over the spatial positions
    (``norm_dims='spatial'``, default; instance-norm style, biased variance) or per sample over
    ``C x H x W`` (``norm_dims='chw'``). Reductions: ``'mean'`` (over all elements, default) or
    ``'pixel'`` (sum over channels, mean over the ``N*H*W`` positions). Paper weights: KD 10,
    NFD 0.7. Not checked against code: the authors' code was not available to us, so the exact
    reduction behind the 0.7 weight is unverified; tune ``loss_weight`` when switching reduction.
    The loss is invariant to ``a * F_s + b`` for ``a > 0`` (up to ``eps``). The student side
    normally gets a ``ConvBNConnector`` when channel counts differ.

    Args:
        norm_dims (str): ``'spatial'`` (default) or ``'chw'``.
        reduction (str): ``'mean'`` (default) or ``'pixel'``.
        eps (float): variance epsilon (> 0). Default 1e-5.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self,
                 norm_dims: str = 'spatial',
                 reduction: str = 'mean',
                 eps: float = 1e-5,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        self.norm_dims = check_choice(name, 'norm_dims', norm_dims, ('spatial', 'chw'))
        self.reduction = check_choice(name, 'reduction', reduction, ('mean', 'pixel'))
        self.eps = check_positive(name, 'eps', eps)

    def _standardize(self, feat: Tensor) -> Tensor:
        dims = (2, 3) if self.norm_dims == 'spatial' else (1, 2, 3)
        mean = feat.mean(dim=dims, keepdim=True)
        var = feat.var(dim=dims, unbiased=False, keepdim=True)
        return (feat - mean) / (var + self.eps).sqrt()

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted NFD loss.

        Args:
            student (Tensor): student feature map, ``N x C x H x W``.
            teacher (Tensor): teacher feature map, same shape (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(type(self).__name__, student, teacher, min_dim=4, max_dim=4)
        if self.norm_dims == 'spatial' and student.shape[2] * student.shape[3] < 2:
            raise ValueError(f"{type(self).__name__}: norm_dims='spatial' needs at least 2 spatial "
                             f"positions, got shape {tuple(student.shape)}; use norm_dims='chw'.")
        sq = (self._standardize(student) - self._standardize(teacher.detach())).pow(2)
        if self.reduction == 'mean':
            loss = sq.mean()
        else:
            loss = sq.sum() / (sq.shape[0] * sq.shape[2] * sq.shape[3])
        return loss * self.loss_weight
