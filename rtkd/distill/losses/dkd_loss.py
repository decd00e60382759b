"""Decoupled knowledge distillation, DKD (Zhao et al., CVPR 2022)."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_positive, check_shapes
from .base import BaseDistillLoss


def _kl_rows(log_p_t: Tensor, log_p_s: Tensor) -> Tensor:
    """Summed ``KL(p_t || p_s)`` over all rows and entries (teacher log-probs first)."""
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum()


@MODELS.register_module()
class DKDLoss(BaseDistillLoss):
    r"""Decoupled knowledge distillation, "Decoupled Knowledge Distillation" (Borui Zhao, Quan
    Cui, Renjie Song, Yiyu Qiu, Jiajun Liang, CVPR 2022, arXiv 2203.08679).

    Classical KD is split, for each sample with ground-truth class ``g``, into a *target-class*
    term on the binary distribution ``b = [p_g, 1 - p_g]`` and a *non-target-class* term on the
    distribution ``p_hat`` over the ``C - 1`` other classes (softmax of the other logits), both
    from ``softmax(z / T)``:

    .. math::
        \mathrm{TCKD} = \frac{T^2}{N} \sum_n \mathrm{KL}(b^t_n \,\|\, b^s_n),\qquad
        \mathrm{NCKD} = \frac{T^2}{N} \sum_n \mathrm{KL}(\hat p^t_n \,\|\, \hat p^s_n)

    .. math::
        L = \alpha\, \mathrm{TCKD} + \beta\, \mathrm{NCKD}

    The ground-truth labels come from the batch's ``data_samples`` (mmpretrain ``DataSample``
    with one ``gt_label`` each; the distiller passes them through ``extra_inputs``); a 1-D label
    tensor is accepted too. Official defaults (megvii-research/mdistiller, ``CFG.DKD``, CIFAR-100):
    ``alpha=1``, ``beta=8``, ``T=4``, cross-entropy weight 1, warm-up 20 epochs; ImageNet
    ResNet-34 -> ResNet-18: ``beta=0.5``, ``T=1``, warm-up 1 epoch.

    Deviations from the official code (``mdistiller/distillers/DKD.py``):

    * The warm-up ``min(epoch / warmup, 1)`` (1-based epochs, a step per epoch) is not part of
      the loss: recipes use rtkd's loss schedule, ``schedule=dict(warmup_iters=warmup_epochs *
      iters_per_epoch)`` (rtkd/distill/schedules.py), a linear ramp per iteration from 0.
    * The non-target distribution is the softmax over the other ``C - 1`` logits exactly; the
      official code subtracts 1000 from the target logit (after ``/ T``) and takes the softmax
      over all ``C`` (the same up to ``exp(-1000)``).
    * ``b`` is computed in log space (``log p_g`` from ``log_softmax``, ``log(1 - p_g)`` from a
      log-sum-exp over the other classes) instead of ``log`` of summed probabilities, which is
      the same number without the ``log(0)`` the official form hits for very confident logits.

    Only ``N x C`` classifier logits are accepted (dense ``N x C x H x W`` maps with label maps
    are rejected: use ``DISTLoss`` or ``HintonKD`` for those). Zero when student equals teacher;
    invariant to adding a per-sample constant to either logit vector.

    Args:
        alpha (float): weight of TCKD (>= 0). Default 1.0.
        beta (float): weight of NCKD (>= 0). Default 8.0.
        tau (float): temperature ``T`` (> 0). Default 4.0.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ('data_samples', )

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 tau: float = 4.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        for arg, value in (('alpha', alpha), ('beta', beta)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f'{name}: {arg} must be a number >= 0, got {value!r}.')
        if alpha == 0 and beta == 0:
            raise ValueError(f'{name}: alpha and beta are both 0, so the loss is always 0; '
                             f'give TCKD (alpha) or NCKD (beta) a positive weight.')
        self.alpha, self.beta = float(alpha), float(beta)
        self.tau = check_positive(name, 'tau', tau)

    def _labels(self, data_samples: Union[Sequence, Tensor, None], n: int, c: int,
                device: torch.device) -> Tensor:
        name = type(self).__name__
        if data_samples is None:
            raise ValueError(f"{name} needs the ground-truth labels: pass data_samples= (the "
                             f"Distiller does this through extra_inputs=('data_samples',)).")
        if torch.is_tensor(data_samples):
            labels = data_samples
        else:
            labels = []
            for i, sample in enumerate(data_samples):
                gt = getattr(sample, 'gt_label', None)
                if gt is None:
                    raise ValueError(f'{name}: data sample {i} has no gt_label; DKD needs one '
                                     f'hard class label per sample (mmpretrain DataSample).')
                gt = torch.as_tensor(gt).reshape(-1)
                if gt.numel() != 1:
                    raise ValueError(f'{name}: data sample {i} has {gt.numel()} labels '
                                     f'({gt.tolist()}); DKD needs exactly one class per sample '
                                     f'(single-label classification).')
                labels.append(gt)
            labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
        labels = labels.reshape(-1)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f'{name}: labels must be integer class indices, got dtype '
                             f'{labels.dtype}; soft targets (mixup/cutmix) are not supported.')
        if labels.numel() != n:
            raise ValueError(f'{name}: {labels.numel()} labels for a batch of {n} logits; give '
                             f'one label per sample.')
        if n and (labels.min() < 0 or labels.max() >= c):
            raise ValueError(f'{name}: labels must lie in [0, {c - 1}] for {c} classes, got '
                             f'{labels.tolist()}.')
        return labels.to(device=device, dtype=torch.long)

    def forward(self,
                student: Tensor,
                teacher: Tensor,
                data_samples: Optional[Union[Sequence, Tensor]] = None,
                **extra) -> Tensor:
        """Compute the weighted DKD loss.

        Args:
            student (Tensor): student logits, ``N x C``.
            teacher (Tensor): teacher logits, same shape (detached here).
            data_samples (list | Tensor): the batch's data samples (each with ``gt_label``) or
                an ``N`` tensor of class indices.
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        name = type(self).__name__
        if student.dim() != 2:
            raise ValueError(f'{name} takes N x C classifier logits, got shape '
                             f'{tuple(student.shape)}; for dense N x C x H x W maps use '
                             f"'DISTLoss' or 'HintonKD'.")
        check_shapes(name, student, teacher, min_dim=2, max_dim=2)
        n, c = student.shape
        if c < 2:
            raise ValueError(f'{name} needs at least 2 classes, got shape {tuple(student.shape)}.')
        labels = self._labels(data_samples, n, c, student.device)
        gt_mask = torch.zeros_like(student, dtype=torch.bool)
        gt_mask[torch.arange(n, device=student.device), labels] = True

        z_s = student / self.tau
        z_t = teacher.detach() / self.tau
        lse_s, lse_t = z_s.logsumexp(dim=1), z_t.logsumexp(dim=1)
        # non-target logits, N x (C - 1), row order kept
        o_s, o_t = z_s[~gt_mask].view(n, c - 1), z_t[~gt_mask].view(n, c - 1)
        lse_os, lse_ot = o_s.logsumexp(dim=1), o_t.logsumexp(dim=1)
        # binary (target, rest) distributions in log space
        log_b_s = torch.stack([z_s[gt_mask] - lse_s, lse_os - lse_s], dim=1)
        log_b_t = torch.stack([z_t[gt_mask] - lse_t, lse_ot - lse_t], dim=1)
        tckd = _kl_rows(log_b_t, log_b_s)
        nckd = _kl_rows(o_t.log_softmax(dim=1), o_s.log_softmax(dim=1))
        loss = (self.alpha * tckd + self.beta * nckd) * (self.tau**2) / n
        return loss * self.loss_weight
