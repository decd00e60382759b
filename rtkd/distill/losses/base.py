"""The contract of a distillation loss: what the distillers give it and what they expect back.

A loss plugged into :class:`~rtkd.distill.Distiller` (or :class:`~rtkd.distill.CohortDistiller`)
is an ``nn.Module`` built from its config by the root ``mmengine.registry.MODELS``:

* ``forward(student, teacher, **extra) -> Tensor``: ``student`` / ``teacher`` are the values of
  the loss's two taps after their connectors (the ``teacher`` value is detached; tensors, or
  lists of tensors for ``@*`` taps); ``extra`` holds one keyword per name in
  :attr:`BaseDistillLoss.extra_inputs`. It returns a scalar **already multiplied by**
  ``loss_weight``; the distiller multiplies it by the loss's schedule factor only.
* :attr:`BaseDistillLoss.extra_inputs` (class attribute): keyword inputs the loss needs besides
  the two taps: ``'inputs'`` (the preprocessed batch), ``'data_samples'`` (the batch's data
  samples) or the name of a tap; a recipe may map a name to another tap with
  ``<name>='<tap>'`` in the loss config.
* :meth:`BaseDistillLoss.setup` (``setup(distiller)``): called once when the distiller is built,
  after its taps, losses and connectors exist (e.g. OFD reads a teacher BN, FGFI the detector's
  prior generator). Default: nothing.
* An adversarial loss derives from :class:`AdversarialDistillLoss`: it owns its
  ``discriminator`` (trained by the distiller's critic step with its own optimizer, kept out of
  DDP's gradient bookkeeping) and :meth:`AdversarialDistillLoss.discriminator_loss`.

Third-party losses: a loss class that does not derive from :class:`BaseDistillLoss` still works
as long as its ``forward`` follows the same contract (and it may declare ``extra_inputs``); it
gets no ``setup`` call and is never treated as adversarial. Derive from the bases to get them.
"""
from __future__ import annotations

from typing import Tuple

import torch.nn as nn
from torch import Tensor


def check_loss_weight(loss_name: str, loss_weight: float) -> float:
    """Validate a loss weight (a finite number >= 0).

    Args:
        loss_name (str): class name of the loss (used in the message).
        loss_weight (float): the given weight.

    Returns:
        float: ``float(loss_weight)``.

    Raises:
        ValueError: when the weight is not a number, negative or not finite.
    """
    if isinstance(loss_weight, bool) or not isinstance(loss_weight, (int, float)) \
            or not 0 <= float(loss_weight) < float('inf'):
        raise ValueError(f'{loss_name}: loss_weight must be a finite number >= 0, got '
                         f'{loss_weight!r}.')
    return float(loss_weight)


class BaseDistillLoss(nn.Module):
    """Base of every rtkd distillation loss (see the module docstring for the contract).

    Args:
        loss_weight (float): multiplier of the loss (``forward`` returns the weighted value).
            Must be a finite number >= 0. Default 1.0.
    """

    #: keyword inputs besides the two taps: 'inputs', 'data_samples' or tap names
    extra_inputs: Tuple[str, ...] = ()

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = check_loss_weight(type(self).__name__, loss_weight)

    def setup(self, distiller) -> None:
        """Hook called once by the distiller after it is built (default: nothing).

        Args:
            distiller (Distiller): the distiller that owns this loss (its ``teacher``,
                ``resolve_module``, ``tap_specs``, ``connectors``, ``loss_maps``).
        """

    def forward(self, student, teacher, **extra) -> Tensor:
        """The weighted loss.

        Args:
            student: the student tap (after its connectors).
            teacher: the teacher tap (after its connectors, detached).
            **extra: one keyword per name in :attr:`extra_inputs`.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement forward(student, '
                                  f'teacher, **extra).')


class AdversarialDistillLoss(BaseDistillLoss):
    """Base of adversarial losses: the loss owns a ``discriminator`` and its critic loss.

    The distiller's ``train_step`` updates the student with ``forward`` (the generator loss,
    which must leave no gradient on the discriminator), then calls
    :meth:`discriminator_loss` on the detached taps of the same step and updates
    ``discriminator``'s parameters with the ``discriminator`` optim wrapper
    (``DistillOptimWrapperConstructor``). Subclasses set ``self.discriminator`` (an
    ``nn.Module``) in their ``__init__``.

    Args:
        loss_weight (float): multiplier of the generator loss. Default 1.0.
    """

    discriminator: nn.Module

    def discriminator_loss(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """The critic's loss on detached student ("fake") and teacher ("real") values.

        Args:
            student (Tensor): the student tap of this step (detached).
            teacher (Tensor): the teacher tap of this step (detached).
            **extra: the loss's extra inputs of this step.

        Returns:
            Tensor: scalar loss whose gradients reach only ``discriminator``.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement '
                                  f'discriminator_loss(student, teacher, **extra).')
