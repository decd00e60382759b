"""Knowledge adaptation losses (He et al., CVPR 2019): reconstruction (stage 1), adaptation and
affinity (stage 2).

The three terms of one method live in one file (the stage-1 reconstruction loss is used by
:class:`~rtkd.distill.ka.KATeacherAutoEncoder`, the other two by the Distiller).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_choice, check_positive, check_shapes
from .base import BaseDistillLoss, check_loss_weight
from .pair_wise_kd import PairWiseKD

PAPER = ('"Knowledge Adaptation for Efficient Semantic Segmentation" (Tong He, Chunhua Shen, '
         'Zhi Tian, Dong Gong, Changming Sun, Youliang Yan, CVPR 2019, arXiv 1903.04688)')


def _own_teacher_tap(loss: nn.Module, distiller) -> str:
    for name, mod in distiller.losses.items():
        if mod is loss:
            return distiller.loss_maps[name]['teacher']
    raise RuntimeError(f'{type(loss).__name__} is not one of the distiller\'s losses.')


def _encoder_on(distiller, tap: str):
    from ..ka.connectors import KAEncoderConnector
    chain = distiller.connectors[tap] if tap in distiller.connectors else []
    found = [
        m for m in (chain if isinstance(chain, nn.ModuleList) else [chain])
        if isinstance(m, KAEncoderConnector)
    ]
    return found[0] if found else None


@MODELS.register_module()
class KAReconstructionLoss(nn.Module):
    r"""Stage-1 auto-encoder objective of knowledge adaptation (He et al., CVPR 2019, Sec. 3.1).

    The paper trains ``E, D`` on the teacher's last feature map ``F_t`` with

    .. math::
        L_{ae} = \|F_t - D(E(F_t))\|_2^2 + \alpha \|E(F_t)\|_1,\qquad \alpha = 10^{-7}

    (the l1 term keeps the code sparse, so that the auto-encoder does not learn the identity).
    Here both terms are divided by the number of elements of ``F_t`` in the batch
    (``N*C*H*W``): the reconstruction term becomes the mean squared error, the ratio of the two
    terms (``alpha``) stays the paper's. That rescaling is a learning-rate choice; torchdistill's
    KTAAD recipe instead adds ``1e-7 * sum|E(F_t)|`` over the batch to the mean squared error.

    Not a :class:`~rtkd.distill.losses.base.BaseDistillLoss`: it is the auto-encoder's training
    objective in :class:`~rtkd.distill.ka.KATeacherAutoEncoder` (``forward(recon, target,
    code)`` returns two terms), not a student/teacher loss a Distiller can plug in.

    Args:
        reg_weight (float): ``alpha``, >= 0. Default 1e-7 (paper).
        loss_weight (float): multiplier of both terms. Default 1.0.

    Returns (forward):
        dict[str, Tensor]: ``loss_rec`` (weighted mean squared error) and ``loss_reg``
        (weighted, scaled l1 term).
    """

    def __init__(self, reg_weight: float = 1e-7, loss_weight: float = 1.0) -> None:
        super().__init__()
        if not isinstance(reg_weight, (int, float)) or reg_weight < 0:
            raise ValueError(f'KAReconstructionLoss: reg_weight must be >= 0, got {reg_weight!r}.')
        self.reg_weight = float(reg_weight)
        self.loss_weight = check_loss_weight(type(self).__name__, loss_weight)

    def forward(self, recon: Tensor, target: Tensor, code: Tensor) -> Dict[str, Tensor]:
        """Compute both terms.

        Args:
            recon (Tensor): ``D(E(F_t))``, same shape as ``target``.
            target (Tensor): the teacher feature ``F_t`` (detached here).
            code (Tensor): ``E(F_t)``.

        Returns:
            dict[str, Tensor]: ``loss_rec`` and ``loss_reg``.
        """
        if recon.shape != target.shape:
            raise ValueError(f'KAReconstructionLoss: reconstruction {tuple(recon.shape)} and '
                             f'teacher feature {tuple(target.shape)} differ in shape; the decoder '
                             f'must mirror the encoder.')
        target = target.detach()
        numel = float(target.numel())
        return dict(
            loss_rec=(recon - target).pow(2).sum() / numel * self.loss_weight,
            loss_reg=code.abs().sum() / numel * self.reg_weight * self.loss_weight)


@MODELS.register_module()
class KAAdaptationLoss(BaseDistillLoss):
    r"""Adaptation loss of knowledge adaptation (He et al., CVPR 2019, Sec. 3.1).

    The student feature goes through the adapter ``C_f`` (connector
    :class:`~rtkd.distill.ka.KAAdapter`, 3x3 conv + BN + ReLU) and matches the frozen stage-1
    encoder's code of the teacher feature (connector :class:`~rtkd.distill.ka.KAEncoderConnector`
    on the teacher tap); both are normalised first:

    .. math::
        L_{adapt} = \frac{1}{|I|} \sum_{j \in I}
            \Big\| \frac{E(F_t)^j}{\|E(F_t)^j\|_q} - \frac{C_f(F_s)^j}{\|C_f(F_s)^j\|_q} \Big\|_p

    with ``I`` the positions of the batch (``normalize='position'``: each position's channel
    vector is normalised; the loss is then invariant to a positive per-position scaling of
    either side). The paper only says that ``p`` and ``q`` are different norms; ``p=1, q=2`` are
    torchdistill's values (its KTAAD recipe; no code from the authors). Paper weight (``beta``):
    50. Deviation from torchdistill: it normalises each *sample's* flattened ``C*H*W`` map
    (``normalize='sample'`` here: ``I`` = the samples) and, for ``p=1``, averages the absolute
    differences over all elements; here the ``p``-norm of the difference is averaged over ``I``
    as in the formula. ``eps`` (1e-8) is added to the norms.

    At build time (``setup``) the teacher tap must carry a ``KAEncoderConnector`` whose
    checkpoint matches the tap (:meth:`KAEncoderConnector.check_teacher`).

    Args:
        p (float): norm of the difference, >= 1. Default 1.
        q (float): normalising norm, >= 1. Default 2.
        normalize (str): ``'position'`` (default) or ``'sample'``.
        eps (float): added to the normalising norms. Default 1e-8.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self,
                 p: float = 1.0,
                 q: float = 2.0,
                 normalize: str = 'position',
                 eps: float = 1e-8,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        for arg, val in (('p', p), ('q', q)):
            if check_positive(name, arg, val) < 1:
                raise ValueError(f'{name}: {arg} must be a norm order >= 1, got {val!r}.')
        self.p, self.q = float(p), float(q)
        self.normalize = check_choice(name, 'normalize', normalize, ('position', 'sample'))
        self.eps = check_positive(name, 'eps', eps)

    def setup(self, distiller) -> None:
        """Check that the teacher tap carries a matching stage-1 encoder (build time)."""
        tap = _own_teacher_tap(self, distiller)
        enc = _encoder_on(distiller, tap)
        if enc is None:
            raise ValueError(f"{type(self).__name__} matches the stage-1 code of the teacher "
                             f"feature: add connectors=dict({tap}=dict(type='KAEncoderConnector', "
                             f"checkpoint='<stage-1 iter_N.pth>')).")
        enc.check_teacher(distiller, tap)

    def _unit(self, x: Tensor) -> Tensor:
        return x / (torch.linalg.vector_norm(x, ord=self.q, dim=1, keepdim=True) + self.eps)

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted adaptation loss.

        Args:
            student (Tensor): adapted student feature ``C_f(F_s)``, ``N x C x H x W``.
            teacher (Tensor): code ``E(F_t)``, same shape (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(type(self).__name__, student, teacher, min_dim=4, max_dim=4)
        t = teacher.detach()
        if self.normalize == 'sample':
            student, t = student.flatten(1), t.flatten(1)
        diff = self._unit(student) - self._unit(t)
        return torch.linalg.vector_norm(diff, ord=self.p, dim=1).mean() * self.loss_weight


@MODELS.register_module()
class KAAffinityLoss(PairWiseKD):
    r"""Affinity distillation of knowledge adaptation (He et al., CVPR 2019, Sec. 3.2).

    Non-local pairwise similarity of the ``m = H*W`` positions of a feature map ``F``:

    .. math::
        A_{ij} = \frac{F_i^\top F_j}{\|F_i\|_2\,\|F_j\|_2},\qquad
        L_{aff} = \frac{1}{N m} \sum_{n} \sum_{i=1}^{m} \big\| A^s_{n,i} - A^t_{n,i} \big\|_2

    with ``A^s`` from the student feature (after the affinity adapter ``C_a``, e.g. a
    :class:`~rtkd.distill.ka.KAAdapter` with ``norm=False, relu=False``) and ``A^t`` from the
    translated teacher knowledge ``E(F_t)`` (connector :class:`~rtkd.distill.ka.KAEncoderConnector`
    on the teacher tap) or any teacher feature; ``A_{n,i}`` is row ``i`` (``m`` values) of image
    ``n``'s matrix. The similarity is :class:`PairWiseKD`'s (inherited: L2-normalised nodes,
    ``norm + 1e-8``, float32), without its pooling. Channel counts may differ; positions must
    match. Invariant to a positive per-position scaling of either feature. Paper weight
    (``gamma``): 1.

    Deviation from torchdistill's ``AffinityLoss`` (no code from the authors): it normalises each
    *channel* over the positions and sums, over channels, the Frobenius norms of per-channel
    ``m x m`` outer-product differences divided by ``m``; here the affinity is the position
    similarity of the formula above, and each row's L2 distance is averaged.

    If the teacher tap carries a ``KAEncoderConnector``, ``setup`` checks it against the tap
    (:meth:`KAEncoderConnector.check_teacher`).

    Args:
        detach_norm (bool): detach the node norms (PairWiseKD's option). Default False.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self, detach_norm: bool = False, loss_weight: float = 1.0) -> None:
        super().__init__(scale=1.0, detach_norm=detach_norm, loss_weight=loss_weight)

    def setup(self, distiller) -> None:
        """Check a stage-1 encoder on the teacher tap, if there is one (build time)."""
        tap = _own_teacher_tap(self, distiller)
        enc = _encoder_on(distiller, tap)
        if enc is not None:
            enc.check_teacher(distiller, tap)

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted affinity loss.

        Args:
            student (Tensor): student feature, ``N x C_s x H x W``.
            teacher (Tensor): teacher feature (or code), ``N x C_t x H x W`` (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(
            type(self).__name__, student, teacher, min_dim=4, max_dim=4, match_channels=False)
        diff = self._similarity(student) - self._similarity(teacher.detach())  # N x m x m
        return diff.norm(dim=2).mean() * self.loss_weight
