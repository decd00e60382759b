"""FitNets hint loss (Romero et al., ICLR 2015)."""
from __future__ import annotations

from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_choice, check_shapes
from .base import BaseDistillLoss


@MODELS.register_module()
class FitNetsLoss(BaseDistillLoss):
    r"""Hint loss of "FitNets: Hints for Thin Deep Nets" (Romero, Ballas, Kahou, Chassang, Gatta,
    Bengio, ICLR 2015, arXiv 1412.6550).

    The student's guided layer goes through a regressor ``r`` (a distiller connector, e.g.
    ``ConvBNConnector``; not part of this loss) and is matched to the teacher's hint layer:

    .. math::
        L = \tfrac{1}{2}\,\| u_h(x) - r(v_g(x)) \|_2^2

    ``reduction='mean'`` (default) returns the plain MSE over all elements (the common
    implementation); ``reduction='paper'`` returns ``0.5 * sum / N`` (the paper's formula averaged
    over the batch).

    Args:
        reduction (str): ``'mean'`` (default) or ``'paper'``.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        self.reduction = check_choice(
            type(self).__name__, 'reduction', reduction, ('mean', 'paper'))

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted hint loss.

        Args:
            student (Tensor): regressor output of the student, ``N x C [x H x W]``.
            teacher (Tensor): teacher hint, same shape (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(type(self).__name__, student, teacher, min_dim=2, max_dim=4)
        sq = (student - teacher.detach()).pow(2)
        loss = sq.mean() if self.reduction == 'mean' else 0.5 * sq.sum() / sq.shape[0]
        return loss * self.loss_weight
