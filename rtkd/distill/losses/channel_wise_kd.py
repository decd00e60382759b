"""Channel-wise distillation, CWD (Shu et al., ICCV 2021)."""
from __future__ import annotations

import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_choice, check_positive, check_shapes
from .base import BaseDistillLoss


@MODELS.register_module()
class ChannelWiseKD(BaseDistillLoss):
    r"""Channel-wise knowledge distillation, "Channel-wise Knowledge Distillation for Dense
    Prediction" (Shu, Liu, Gao, Yan, Shen, ICCV 2021, arXiv 2011.13256).

    Each channel ``c`` of an ``N x C x H x W`` map is turned into a distribution over the spatial
    positions, ``phi(y_c) = softmax(y_c / T)`` over the ``H*W`` positions, and

    .. math::
        L = \frac{T^2}{N C} \sum_{n, c} \mathrm{KL}\big(\phi(y^t_{n,c}) \,\|\, \phi(y^s_{n,c})\big)

    (``normalization='channel'``, ``divergence='kl'``; paper setting on logits: ``tau=4``,
    ``loss_weight=3``). The official ``CriterionCWD`` (TorchDistiller) also offers:

    * ``normalization='spatial'``: softmax over the *channels* at each pixel, sum divided by
      ``N*H*W`` (a per-pixel KD).
    * ``normalization='channel_mean'``: each channel reduced to its spatial mean (an ``N x C``
      vector, no softmax), sum divided by ``N*C``; only meaningful with ``divergence='mse'``.
    * ``divergence='mse'``: summed squared difference of the normalised maps (same divisors).
      The official code forces ``T = 1`` for ``'mse'``; we therefore reject ``tau != 1`` with mse.

    All values equal the official code on the same inputs (KL in the official code is
    ``KLDivLoss(reduction='sum')`` on ``log(phi_s)``; we use ``log_softmax`` for stability, which
    is the same number). With ``'channel'`` the loss is invariant to adding a per-(sample, channel)
    constant to the student map. Channel counts must match: add a ``ConvBNConnector`` otherwise.

    Args:
        tau (float): temperature ``T`` (> 0); must be 1.0 with ``divergence='mse'``. Default 1.0.
        normalization (str): ``'channel'`` (default), ``'spatial'`` or ``'channel_mean'``.
        divergence (str): ``'kl'`` (default) or ``'mse'``.
        loss_weight (float): multiplier applied to the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ()

    def __init__(self,
                 tau: float = 1.0,
                 normalization: str = 'channel',
                 divergence: str = 'kl',
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        self.tau = check_positive(name, 'tau', tau)
        self.normalization = check_choice(name, 'normalization', normalization,
                                          ('channel', 'spatial', 'channel_mean'))
        self.divergence = check_choice(name, 'divergence', divergence, ('kl', 'mse'))
        if self.divergence == 'mse' and self.tau != 1.0:
            raise ValueError(f"{name}: tau={tau} has no effect with divergence='mse' (the official "
                             "CWD code uses T=1 for mse); set tau=1.0 or use divergence='kl'.")
        if self.normalization == 'channel_mean' and self.divergence == 'kl':
            raise ValueError(f"{name}: normalization='channel_mean' gives spatial means, not "
                             "distributions, so KL is undefined; use divergence='mse'.")

    def forward(self, student: Tensor, teacher: Tensor, **extra) -> Tensor:
        """Compute the weighted CWD loss.

        Args:
            student (Tensor): student map (logits or features), ``N x C x H x W``.
            teacher (Tensor): teacher map, same shape (detached here).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        check_shapes(type(self).__name__, student, teacher, min_dim=4, max_dim=4)
        teacher = teacher.detach()
        n, c, h, w = student.shape
        total = cwd_terms(student, teacher, self.tau, self.normalization, self.divergence).sum()
        denom = n * c if self.normalization in ('channel', 'channel_mean') else n * h * w
        return total / denom * (self.tau**2) * self.loss_weight


def cwd_terms(student: Tensor,
              teacher: Tensor,
              tau: float = 1.0,
              normalization: str = 'channel',
              divergence: str = 'kl') -> Tensor:
    r"""The un-normalised terms of :class:`ChannelWiseKD`, one per distribution compared.

    ``ChannelWiseKD`` returns ``cwd_terms(...).sum() / denom * T^2 * loss_weight`` (``denom`` =
    ``N*C`` for ``'channel'`` / ``'channel_mean'``, ``N*H*W`` for ``'spatial'``); the analysis
    tools call this function for per-channel values, so figures and loss share one formula.
    With ``'channel'`` + ``'kl'``, entry ``(n, c)`` is
    :math:`\mathrm{KL}(\phi(y^t_{n,c}/T) \,\|\, \phi(y^s_{n,c}/T))`, ``phi`` the softmax over
    the ``H*W`` positions (:func:`cwd_log_distributions`).

    Args:
        student (Tensor): ``N x C x H x W`` student map.
        teacher (Tensor): teacher map of the same shape.
        tau (float): temperature ``T``.
        normalization (str): ``'channel'``, ``'spatial'`` or ``'channel_mean'``.
        divergence (str): ``'kl'`` or ``'mse'``.

    Returns:
        Tensor: ``N x C`` (``'channel'``, ``'channel_mean'``) or ``N x H x W`` (``'spatial'``)
        terms, before the division, ``T^2`` and the loss weight.
    """
    if normalization == 'channel_mean' and divergence == 'kl':
        raise ValueError("normalization='channel_mean' gives spatial means, not distributions, "
                         "so KL is undefined; use divergence='mse'.")
    if normalization == 'channel' and divergence == 'kl':
        log_p_s = cwd_log_distributions(student, tau).flatten(2)  # N x C x HW, over HW
        log_p_t = cwd_log_distributions(teacher, tau).flatten(2)
        return (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    if normalization == 'channel':
        dim = -1
        s, t = (student / tau).flatten(2), (teacher / tau).flatten(2)  # N x C x HW
    elif normalization == 'spatial':
        dim = 1  # distribution over C at each pixel
        s, t = student / tau, teacher / tau
    else:  # channel_mean
        dim = None
        s, t = (student / tau).flatten(2).mean(-1), (teacher / tau).flatten(2).mean(-1)  # N x C
    if divergence == 'kl':
        log_p_s = F.log_softmax(s, dim=dim)
        log_p_t = F.log_softmax(t, dim=dim)
        elem = log_p_t.exp() * (log_p_t - log_p_s)
    else:
        if dim is not None:
            s, t = F.softmax(s, dim=dim), F.softmax(t, dim=dim)
        elem = (s - t).pow(2)
    return elem if dim is None else elem.sum(dim)


def cwd_log_distributions(x: Tensor, tau: float = 1.0) -> Tensor:
    r"""CWD's per-channel spatial distributions, :math:`\log\phi(y_c / T)` over the ``H*W``
    positions (what ``normalization='channel'`` compares).

    Args:
        x (Tensor): ``N x C x H x W`` map.
        tau (float): temperature ``T``.

    Returns:
        Tensor: ``N x C x H x W`` log-probabilities, each ``(n, c)`` summing to 1 after ``exp``.
    """
    return F.log_softmax((x / tau).flatten(2), dim=-1).reshape(x.shape)
