"""Overhaul of feature distillation, OFD (Heo et al., ICCV 2019)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ._utils import check_choice, check_shapes
from .base import BaseDistillLoss


def margin_from_bn(bn: nn.Module) -> Tensor:
    r"""Per-channel margin ``m_c = E[x | x < 0]`` for ``x ~ N(beta_c, gamma_c^2)``.

    Closed form (truncated normal): ``m = beta - |gamma| * pdf(beta/|gamma|) / cdf(-beta/|gamma|)``;
    as in the official code, channels with ``cdf(-beta/|gamma|) <= 0.001`` (almost never negative)
    use ``-3 |gamma|`` instead.

    Args:
        bn (nn.Module): a batch-norm layer with affine ``weight`` (gamma) and ``bias`` (beta).

    Returns:
        Tensor: float32 margins, shape ``(C,)``, on the BN's device.

    Raises:
        ValueError: when ``bn`` is not an affine batch-norm layer.
    """
    if not isinstance(bn, _BatchNorm) or bn.weight is None or bn.bias is None:
        raise ValueError(f'OFDLoss: teacher_bn must name an affine BatchNorm layer (the BN right '
                         f'before the tapped ReLU), got {type(bn).__name__}.')
    gamma = bn.weight.detach().double().abs().clamp_min(1e-12)
    beta = bn.bias.detach().double()
    z = beta / gamma
    cdf_neg = torch.special.ndtr(-z)
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    margin = beta - gamma * pdf / cdf_neg.clamp_min(1e-300)
    margin = torch.where(cdf_neg > 1e-3, margin, -3 * gamma)
    return margin.float()


@MODELS.register_module()
class OFDLoss(BaseDistillLoss):
    r"""Feature distillation of "A Comprehensive Overhaul of Feature Distillation" (Heo, Kim, Yun,
    Park, Kwak, Choi, ICCV 2019, arXiv 1904.01866).

    The teacher's *pre-ReLU* feature goes through the margin ReLU ``sigma_m(t) = max(t, m_c)``,
    the student feature through a ``1x1 conv + BN`` connector (``ConvBNConnector``, on the distiller
    side), and the partial L2 distance skips positions where both are "negative enough":

    .. math::
        L = \frac{1}{N} \sum_{n,c,i,j} \mathbb{1}\big[s > \hat t \;\lor\; \hat t > 0\big]\,
            (s - \hat t)^2,\qquad \hat t = \max(t, m_c)

    i.e. ``(s - t_hat)^2`` counted unless ``s <= t_hat <= 0``. ``m_c = E[x | x < 0]`` of a Gaussian
    with the teacher BN's ``(beta_c, gamma_c)`` (see :func:`margin_from_bn`).

    Normalisation: the official code sums over all elements and divides by the batch size
    (``normalize='batch'``, default, identical number), then scales by 1/1000 for CIFAR/ImageNet
    (``loss_weight=1e-3``) and 1e-5 for segmentation, with extra per-stage dividers (``2^(L-i-1)``
    on CIFAR) that a config expresses as per-loss weights. ``normalize='mean'`` divides by the
    element count instead (scale-free across layers; not the official number).

    The margin comes from, in order: ``margin`` given here; ``teacher_bn`` resolved in
    :meth:`setup` (``distiller.resolve_module('teacher:' + teacher_bn)``); or
    :meth:`set_margin_from_bn`. It is a non-persistent buffer (recomputed each run, follows
    ``.to(device)``, never stored in checkpoints).

    Args:
        margin (float | Sequence[float] | Tensor, optional): per-channel margin ``m_c`` (or one
            value for all channels). Default None.
        teacher_bn (str, optional): dotted name (in the teacher) of the BN before the tapped ReLU.
        normalize (str): ``'batch'`` (sum / N, official, default) or ``'mean'``.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self,
                 margin: Union[float, Sequence[float], Tensor, None] = None,
                 teacher_bn: Optional[str] = None,
                 normalize: str = 'batch',
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        if margin is not None and teacher_bn is not None:
            raise ValueError(f'{name}: pass either margin or teacher_bn, not both.')
        if teacher_bn is not None and (not isinstance(teacher_bn, str) or not teacher_bn):
            raise ValueError(f'{name}: teacher_bn must be the dotted name of a teacher BN layer '
                             f"(e.g. 'backbone.layer4.1.bn2'), got {teacher_bn!r}.")
        self.teacher_bn = teacher_bn
        self.normalize = check_choice(name, 'normalize', normalize, ('batch', 'mean'))
        self.register_buffer('margin', None, persistent=False)
        if margin is not None:
            self.set_margin(margin)

    def set_margin(self, margin: Union[float, Sequence[float], Tensor]) -> None:
        """Set the margin directly.

        Args:
            margin (float | Sequence[float] | Tensor): scalar or per-channel values (all <= 0).
        """
        m = torch.as_tensor(margin, dtype=torch.float32).detach().flatten().clone()
        if m.numel() == 0 or bool((m > 0).any()):
            raise ValueError(f'{type(self).__name__}: margin must be non-empty and <= 0 (it is the '
                             f'mean of the negative part of the teacher response), got {margin!r}.')
        self.margin = m

    def set_margin_from_bn(self, bn: nn.Module) -> None:
        """Compute the margin from a teacher BN layer (see :func:`margin_from_bn`).

        Args:
            bn (nn.Module): the affine BN layer preceding the tapped teacher ReLU.
        """
        self.margin = margin_from_bn(bn)

    def setup(self, distiller) -> None:
        """Distiller hook: read the margin from ``teacher_bn`` when it was given.

        Args:
            distiller: the built distiller, providing ``resolve_module('teacher:<name>')``.
        """
        if self.teacher_bn is not None:
            self.set_margin_from_bn(distiller.resolve_module('teacher:' + self.teacher_bn))

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted OFD loss.

        Args:
            student (Tensor): connector output of the student, ``N x C x H x W`` (or ``N x C``).
            teacher (Tensor): teacher pre-ReLU feature, same shape (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        name = type(self).__name__
        check_shapes(name, student, teacher, min_dim=2, max_dim=4)
        if self.margin is None:
            raise ValueError(f"{name} has no margin: pass teacher_bn='<teacher BN before the "
                             "tapped ReLU>' (read in setup) or margin=... .")
        c = student.shape[1]
        if self.margin.numel() not in (1, c):
            raise ValueError(f'{name}: margin has {self.margin.numel()} channels but the features '
                             f'have {c}; point teacher_bn at the BN of the tapped layer.')
        margin = self.margin.to(device=teacher.device, dtype=teacher.dtype)
        margin = margin.view(1, -1, *([1] * (teacher.dim() - 2)))
        target = torch.maximum(teacher.detach(), margin)
        mask = (student > target) | (target > 0)
        sq = (student - target).pow(2) * mask.to(student.dtype)
        denom = student.shape[0] if self.normalize == 'batch' else student.numel()
        return sq.sum() / denom * self.loss_weight
