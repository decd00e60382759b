"""PKD: feature distillation via the Pearson correlation coefficient (Cao et al., NeurIPS 2022)."""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_choice, check_positive, check_shapes
from .base import BaseDistillLoss


@MODELS.register_module()
class PKDLoss(BaseDistillLoss):
    r"""PKD, "PKD: General Distillation Framework for Object Detectors via Pearson Correlation
    Coefficient" (Weihan Cao, Yifan Zhang, Jianfei Gao, Anda Cheng, Ke Cheng, Jian Cheng,
    NeurIPS 2022, arXiv 2207.02039).

    Student and teacher feature maps (typically FPN levels) are each standardised per channel
    with their *own* statistics, so neither the magnitude of a level nor of a channel dominates,
    and compared with a halved MSE:

    .. math::
        \bar F_c = \frac{F_c - \mu_c}{\sigma_c + \epsilon},\qquad
        L = \frac{1}{2 |F|} \sum \big(\bar F^s - \bar F^t\big)^2

    which for unit-variance maps equals ``1 - r`` with ``r`` the Pearson correlation of the
    two maps (per channel). ``mu_c, sigma_c`` (unbiased std, ``eps = 1e-6`` added to the std) are
    taken over the ``N x H x W`` values of channel ``c`` of the batch (``stats='batch'``, as the
    official mmrazor ``PKDLoss``) or over the ``H x W`` values of each sample and channel
    (``stats='sample'``). A tuple/list of levels gives the sum of the per-level losses (as the
    official loss); rtkd recipes usually tap one level per loss. Official weights
    (mmrazor ``configs/distill/mmdet/pkd``): 6 per FPN level P2-P5 for Faster R-CNN R101 -> R50,
    10 for RetinaNet X101 -> R50, 2x schedule.

    The loss is 0 when student equals teacher and is unchanged (up to ``eps``) under a positive
    per-channel affine map ``a_c F_c + b_c`` (``a_c > 0``) of either side (``stats='sample'``:
    also per sample). Channel counts must match: add a ``ConvBNConnector`` otherwise.

    Deviations from the official code: spatial sizes are compared in full (the official code
    compares only the heights before resizing); ``stats='sample'`` is an rtkd addition.

    Args:
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
        resize_stu (bool): when the spatial sizes differ, resize the student map to the
            teacher's (``True``, default) or the teacher's to the student's (``False``),
            bilinearly (official behaviour).
        stats (str): ``'batch'`` (default, official) or ``'sample'``.
        eps (float): added to the standard deviation (> 0). Default 1e-6.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self,
                 loss_weight: float = 1.0,
                 resize_stu: bool = True,
                 stats: str = 'batch',
                 eps: float = 1e-6) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        if not isinstance(resize_stu, bool):
            raise ValueError(f'{name}: resize_stu must be True or False, got {resize_stu!r}.')
        self.resize_stu = resize_stu
        self.stats = check_choice(name, 'stats', stats, ('batch', 'sample'))
        self.eps = check_positive(name, 'eps', eps)

    def _standardize(self, feat: Tensor) -> Tensor:
        dims = (0, 2, 3) if self.stats == 'batch' else (2, 3)
        mean = feat.mean(dim=dims, keepdim=True)
        std = feat.std(dim=dims, keepdim=True)  # unbiased, as the official code
        return (feat - mean) / (std + self.eps)

    def _level(self, student: Tensor, teacher: Tensor) -> Tensor:
        name = type(self).__name__
        check_shapes(name, student, teacher, min_dim=4, max_dim=4, match_spatial=False)
        teacher = teacher.detach()
        if student.shape[2:] != teacher.shape[2:]:
            if self.resize_stu:
                student = F.interpolate(
                    student, size=teacher.shape[2:], mode='bilinear', align_corners=False)
            else:
                teacher = F.interpolate(
                    teacher, size=student.shape[2:], mode='bilinear', align_corners=False)
        n, _, h, w = student.shape
        count = n * h * w if self.stats == 'batch' else h * w
        if count < 2:
            raise ValueError(f"{name}: stats={self.stats!r} standardises over {count} value(s) "
                             f'per channel (shape {tuple(student.shape)}); it needs at least 2 '
                             f"(use stats='batch' or a larger map).")
        diff = self._standardize(student) - self._standardize(teacher)
        return diff.pow(2).mean() / 2

    def forward(self, student: Union[Tensor, Sequence[Tensor]],
                teacher: Union[Tensor, Sequence[Tensor]], **extra) -> Tensor:
        """Compute the weighted PKD loss.

        Args:
            student (Tensor | Sequence[Tensor]): student map(s), ``N x C x H x W`` each.
            teacher (Tensor | Sequence[Tensor]): teacher map(s), same number and channels
                (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss (summed over levels), already multiplied by ``loss_weight``.
        """
        name = type(self).__name__
        s_levels = (student, ) if torch.is_tensor(student) else tuple(student)
        t_levels = (teacher, ) if torch.is_tensor(teacher) else tuple(teacher)
        if len(s_levels) != len(t_levels) or not s_levels:
            raise ValueError(f'{name}: {len(s_levels)} student level(s) vs {len(t_levels)} '
                             f'teacher level(s); tap the same number of (non-zero) feature '
                             f'maps on both sides.')
        loss = sum(self._level(s, t) for s, t in zip(s_levels, t_levels))
        return loss * self.loss_weight
