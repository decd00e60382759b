"""DIST: distillation from a stronger teacher (Huang et al., NeurIPS 2022)."""
from __future__ import annotations

from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_positive, check_shapes
from .base import BaseDistillLoss


def _pearson_rows(a: Tensor, b: Tensor, eps: float) -> Tensor:
    """Pearson correlation of matching rows of two ``M x K`` matrices (one value per row)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


@MODELS.register_module()
class DISTLoss(BaseDistillLoss):
    r"""DIST, "Knowledge Distillation from A Stronger Teacher" (Tao Huang, Shan You, Fei Wang,
    Chen Qian, Chang Xu, NeurIPS 2022, arXiv 2205.10536).

    Instead of matching the teacher's probabilities exactly (KL), DIST keeps their *relations*:
    with ``Y = softmax(Z / tau)`` over the classes, arranged as an ``M x C`` matrix (``M`` rows:
    the samples of an ``N x C`` batch, or the ``N*H*W`` pixels of the whole batch for dense
    ``N x C x H x W`` maps),

    .. math::
        L_{inter} = 1 - \frac{1}{M} \sum_{m} \rho\big(Y^s_{m,:}, Y^t_{m,:}\big),\qquad
        L_{intra} = 1 - \frac{1}{C} \sum_{c} \rho\big(Y^s_{:,c}, Y^t_{:,c}\big),

    .. math::
        L = \tau^2 \big(\beta L_{inter} + \gamma L_{intra}\big)

    where ``rho(u, v) = <u - mean(u), v - mean(v)> / (||u - mean(u)|| ||v - mean(v)|| + eps)``
    (Pearson correlation; ``eps = 1e-8`` as in the official code). The inter-class term compares
    each prediction's class scores, the intra-class term each class's scores across all
    predictions of the batch.

    Official settings (hunto/DIST_KD and hunto/image_classification_sota): segmentation
    (``segmentation/losses/dist_kd.py``) has no temperature (``tau=1``), ``beta = gamma = 1``,
    loss weight 1 on the main logits (+0.4 x on the auxiliary head's), computed at the logits'
    own resolution with the pixels of the whole batch as rows; classification: ``beta = gamma
    = 1``, loss weight 2, ``tau=1`` on ImageNet and ``tau=4`` on CIFAR-100. The values here are
    the official code's on the same inputs (row order does not matter). Like the official code
    the loss is not exactly 0 for ``student == teacher`` (``eps``: about ``eps / ||Y_m -
    mean||^2`` per row), and a constant row or column (e.g. a uniform prediction) has
    correlation 0. Invariant to adding a per-prediction (per-pixel) constant to either logit
    tensor (the softmax does not see it).

    Args:
        tau (float): temperature (> 0). Default 1.0 (official segmentation and ImageNet).
        beta (float): weight of the inter-class term (>= 0). Default 1.0.
        gamma (float): weight of the intra-class term (>= 0). Default 1.0.
        eps (float): added to the product of norms in the correlation (> 0). Default 1e-8.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self,
                 tau: float = 1.0,
                 beta: float = 1.0,
                 gamma: float = 1.0,
                 eps: float = 1e-8,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        self.tau = check_positive(name, 'tau', tau)
        for arg, value in (('beta', beta), ('gamma', gamma)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f'{name}: {arg} must be a number >= 0, got {value!r}.')
        if beta == 0 and gamma == 0:
            raise ValueError(f'{name}: beta and gamma are both 0, so the loss is always 0; '
                             f'give at least one a positive weight.')
        self.beta, self.gamma = float(beta), float(gamma)
        self.eps = check_positive(name, 'eps', eps)

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted DIST loss.

        Args:
            student (Tensor): student logits, ``N x C`` or ``N x C x H x W``.
            teacher (Tensor): teacher logits, same shape (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        name = type(self).__name__
        check_shapes(name, student, teacher, min_dim=2, max_dim=4)
        if student.dim() == 3:
            raise ValueError(f'{name} expects N x C classifier logits or N x C x H x W dense '
                             f'logits, got shape {tuple(student.shape)}; tap the logits tensor.')
        c = student.shape[1]
        if c < 2:
            raise ValueError(f'{name} needs at least 2 classes (channels) for the inter-class '
                             f'correlation, got shape {tuple(student.shape)}.')
        if student.dim() == 4:  # every pixel of the batch is one row
            student = student.permute(0, 2, 3, 1).reshape(-1, c)
            teacher = teacher.permute(0, 2, 3, 1).reshape(-1, c)
        if student.shape[0] < 2:
            raise ValueError(f'{name} needs at least 2 predictions (samples or pixels) for the '
                             f'intra-class correlation, got 1; use a batch of 2 or more.')
        y_s = (student / self.tau).softmax(dim=1)
        y_t = (teacher.detach() / self.tau).softmax(dim=1)
        inter = 1.0 - _pearson_rows(y_s, y_t, self.eps).mean()
        intra = 1.0 - _pearson_rows(y_s.t(), y_t.t(), self.eps).mean()
        loss = (self.tau**2) * (self.beta * inter + self.gamma * intra)
        return loss * self.loss_weight
