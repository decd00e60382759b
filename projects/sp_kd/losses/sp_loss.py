"""Similarity-preserving knowledge distillation (Tung & Mori, ICCV 2019)."""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor


def similarity_matrix(feat: Tensor) -> Tensor:
    r"""Row-normalised batch similarity :math:`G = \mathrm{rownorm}(Q Q^\top)`.

    Args:
        feat (Tensor): ``N x C [x H x W]`` activations; ``Q`` is ``feat`` flattened to ``N x CHW``.

    Returns:
        Tensor: ``N x N``; each row has unit L2 norm.
    """
    q = feat.reshape(feat.shape[0], -1)
    return F.normalize(q @ q.t(), p=2, dim=1)


@MODELS.register_module()
class SPLoss(nn.Module):
    r"""Similarity-preserving loss of "Similarity-Preserving Knowledge Distillation" (Frederick
    Tung, Greg Mori, ICCV 2019, arXiv 1907.09682).

    The student is taught to make the *same samples of a batch look alike* as the teacher does:
    for activations :math:`A \in \mathbb{R}^{b \times c \times h \times w}` flattened to
    :math:`Q \in \mathbb{R}^{b \times chw}`, :math:`\tilde G = Q Q^\top` and :math:`G` is
    :math:`\tilde G` with each row divided by its L2 norm (paper eq. 2-3). The loss (eq. 4) is

    .. math::
        L_{SP} = \frac{1}{b^2} \, \| G_T - G_S \|_F^2

    Only the ``b x b`` matrices are compared, so the student's and teacher's channels and spatial
    sizes may differ (no connector needed). The paper weights it by ``gamma = 3000`` (CIFAR-10).
    Deviations: one tapped pair per loss entry (the paper sums over several layer pairs - add one
    entry per pair); the teacher is detached here.

    Args:
        loss_weight (float): multiplier (the paper's gamma). Default 1.0.
    """

    extra_inputs: tuple = ()

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted similarity-preserving loss.

        Args:
            student (Tensor): student activations, ``N x C [x H x W]``.
            teacher (Tensor): teacher activations with the same ``N`` (any C, H, W).
            **extra: ignored.

        Returns:
            Tensor: scalar, already multiplied by ``loss_weight``.
        """
        for what, t in (('student', student), ('teacher', teacher)):
            if t.dim() < 2:
                raise ValueError(f'SPLoss expects N x C [x H x W] tensors but the {what} tensor '
                                 f'has shape {tuple(t.shape)}; tap a feature map.')
        if student.shape[0] != teacher.shape[0]:
            raise ValueError(f'SPLoss: student batch {student.shape[0]} != teacher batch '
                             f'{teacher.shape[0]}; feed the same batch to both models.')
        if student.shape[0] < 2:
            raise ValueError('SPLoss compares the samples of a batch with each other and is 0 '
                             'for one sample; use a batch size of at least 2.')
        b = student.shape[0]
        diff = similarity_matrix(teacher.detach()) - similarity_matrix(student)
        return diff.pow(2).sum() / (b * b) * self.loss_weight
