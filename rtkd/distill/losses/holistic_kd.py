"""SKD holistic (adversarial, WGAN-GP) distillation (Liu et al., CVPR 2019)."""
from __future__ import annotations

import os.path as osp
import zlib
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ._utils import check_choice, check_positive, check_shapes
from .base import AdversarialDistillLoss


class ScoreMapCritic(nn.Module):
    """Compact convolutional WGAN critic for (score map [, image]) pairs.

    Not the official SAGAN-style discriminator (which adds two self-attention layers): a stack of
    4x4 stride-2 convolutions with LeakyReLU(0.2), optionally spectral-normalised (SAGAN uses
    spectral norm in D), followed by a 3x3 convolution to one channel whose map is averaged to one
    score per sample. No batch norm (it would break the per-sample gradient penalty).

    Args:
        in_channels (int): input channels (classes, plus 3 when conditioned on the image).
        base_channels (int): channels of the first conv; doubled at every stride-2 stage.
        num_convs (int): number of stride-2 stages (>= 1).
        spectral_norm (bool): wrap every conv in spectral normalisation.
    """

    def __init__(self,
                 in_channels: int,
                 base_channels: int = 64,
                 num_convs: int = 3,
                 spectral_norm: bool = True) -> None:
        super().__init__()

        def wrap(conv: nn.Conv2d) -> nn.Module:
            return nn.utils.parametrizations.spectral_norm(conv) if spectral_norm else conv

        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(num_convs):
            c_out = base_channels * 2**i
            layers += [wrap(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c_in = c_out
        layers.append(wrap(nn.Conv2d(c_in, 1, 3, stride=1, padding=1)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Score a batch.

        Args:
            x (Tensor): ``N x in_channels x H x W``.

        Returns:
            Tensor: ``N`` critic scores.
        """
        return self.layers(x).mean(dim=(1, 2, 3))


@MODELS.register_module()
class HolisticKD(AdversarialDistillLoss):
    r"""Holistic (adversarial) distillation of "Structured Knowledge Distillation for Semantic
    Segmentation" (Liu et al., CVPR 2019, arXiv 1903.04197), a conditional Wasserstein GAN with
    gradient penalty.

    A critic ``D`` scores a score map ``Q`` conditioned on the image ``I``; teacher maps are
    "real", student maps are "fake". The student (generator) minimises

    .. math::
        L_{G} = -\lambda_d \, \mathbb{E}[D(Q^s | I)]\qquad(\lambda_d = \text{loss\_weight}, 0.1)

    and the critic, with its own optimizer, minimises (``discriminator_loss``)

    .. math::
        L_{D} = \mathbb{E}[D(Q^s|I)] - \mathbb{E}[D(Q^t|I)]
                + \lambda_{gp}\,\mathbb{E}\big[(\|\nabla_{\hat Q} D(\hat Q|I)\|_2 - 1)^2\big]

    with ``\hat Q = \alpha Q^t + (1-\alpha) Q^s``, ``alpha ~ U(0, 1)`` per sample, the gradient norm
    taken over each flattened sample, ``lambda_gp = 10``.

    Critic input: ``softmax(Q)`` (``input_mode='softmax'``, default) or the raw logits
    (``'logits'``), concatenated with the image bilinearly resized to the score-map size when
    ``conditional=True`` (the paper's formulation). Deliberate differences from the official code:
    the official critic is a SAGAN-style net with self-attention that sees only the (preprocessed)
    raw score map, i.e. ``conditional=False, input_mode='logits'``; ours is the compact
    :class:`ScoreMapCritic`; the official code also multiplies the critic loss by ``lambda_d``
    (here ``discriminator_weight``, default 1.0: with SGD this only rescales the critic's lr).

    Args:
        num_classes (int): channels of the score map.
        conditional (bool): condition the critic on the image (needs ``inputs``). Default True.
        input_mode (str): ``'softmax'`` (default) or ``'logits'``.
        base_channels (int): width of the critic's first conv. Default 64.
        num_convs (int): stride-2 stages of the critic. Default 3.
        spectral_norm (bool): spectral normalisation in the critic. Default True.
        lambda_gp (float): gradient-penalty weight. Default 10.0.
        discriminator_weight (float): multiplier of :meth:`discriminator_loss`. Default 1.0.
        alpha (str): how the gradient penalty's ``alpha ~ U(0, 1)`` is drawn. ``'global'``
            (default, as the official code): ``torch.rand`` from the process's global RNG, so a
            2-process DDP run draws other values than a 1-process run and a resumed run other
            values than an uninterrupted one (same distribution). ``'sample'``: from a generator
            keyed on (critic step, the sample's image file name, ``alpha_seed``), the same value
            for the same sample at the same step in any process layout and after ``--resume``
            (the step counter ``gp_step`` is a buffer, saved in checkpoints), which makes DDP and
            resume runs equal to the single uninterrupted run
            (tests/test_distill/test_equivalence.py).
        alpha_seed (int): offset of the ``'sample'`` keys. Default 0.
        loss_weight (float): multiplier of the generator loss. Default 1.0 (paper: 0.1).
    """

    extra_inputs: tuple[str, ...] = ('inputs', 'data_samples')

    def __init__(self,
                 num_classes: int,
                 conditional: bool = True,
                 input_mode: str = 'softmax',
                 base_channels: int = 64,
                 num_convs: int = 3,
                 spectral_norm: bool = True,
                 lambda_gp: float = 10.0,
                 discriminator_weight: float = 1.0,
                 alpha: str = 'global',
                 alpha_seed: int = 0,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'{name}: num_classes must be a positive int (channels of the score '
                             f'map), got {num_classes!r}.')
        if not isinstance(num_convs, int) or num_convs < 1:
            raise ValueError(f'{name}: num_convs must be an int >= 1, got {num_convs!r}.')
        self.num_classes = num_classes
        self.num_convs = num_convs
        self.conditional = bool(conditional)
        self.input_mode = check_choice(name, 'input_mode', input_mode, ('softmax', 'logits'))
        self.lambda_gp = float(lambda_gp)
        if self.lambda_gp < 0:
            raise ValueError(f'{name}: lambda_gp must be >= 0, got {lambda_gp!r}.')
        self.discriminator_weight = float(discriminator_weight)
        self.alpha = check_choice(name, 'alpha', alpha, ('global', 'sample'))
        self.alpha_seed = int(alpha_seed)
        if self.alpha == 'sample':  # only then: older checkpoints keep loading strictly
            self.register_buffer('gp_step', torch.zeros((), dtype=torch.long))
        check_positive(name, 'base_channels', base_channels)
        self.discriminator = ScoreMapCritic(num_classes + (3 if self.conditional else 0),
                                            int(base_channels), num_convs, spectral_norm)

    def _prepare(self, score: Tensor) -> Tensor:
        return F.softmax(score, dim=1) if self.input_mode == 'softmax' else score

    def _condition(self, x: Tensor, inputs: Optional[Tensor]) -> Tensor:
        if not self.conditional:
            return x
        if inputs is None:
            raise ValueError(f'{type(self).__name__} with conditional=True needs the image '
                             'batch: call it with inputs=<N x 3 x H x W tensor> '
                             "(extra_inputs=('inputs',)).")
        if inputs.dim() != 4 or inputs.shape[0] != x.shape[0] or inputs.shape[1] != 3:
            raise ValueError(f'{type(self).__name__}: inputs must be N x 3 x H x W with N = '
                             f'{x.shape[0]}, got shape {tuple(inputs.shape)}.')
        img = inputs.detach().to(x.dtype)
        if img.shape[-2:] != x.shape[-2:]:
            img = F.interpolate(img, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return torch.cat([x, img], dim=1)

    def critic(self, score: Tensor, inputs: Optional[Tensor] = None) -> Tensor:
        """Critic scores ``D(Q | I)`` of a score map.

        Args:
            score (Tensor): score map (logits), ``N x num_classes x h x w``.
            inputs (Tensor, optional): image batch (required if conditional).

        Returns:
            Tensor: ``N`` scores.
        """
        return self.discriminator(self._condition(self._prepare(score), inputs))

    def _check(self, student: Tensor, teacher: Optional[Tensor]) -> None:
        name = type(self).__name__
        if student.dim() != 4 or student.shape[1] != self.num_classes:
            raise ValueError(f'{name}: expected a student score map '
                             f'N x {self.num_classes} x H x W, got shape '
                             f'{tuple(student.shape)}; tap the logits (e.g. '
                             "'decode_head.conv_seg') or set num_classes.")
        min_size = 2**self.num_convs
        if min(student.shape[-2:]) < min_size:
            raise ValueError(f'{name}: the score map {tuple(student.shape)} is smaller than '
                             f'{min_size} pixels on a side, too small for num_convs='
                             f'{self.num_convs}; lower num_convs.')
        if teacher is not None:
            check_shapes(name, student, teacher, min_dim=4, max_dim=4)

    def forward(self,
                student: Tensor,
                teacher: Optional[Tensor] = None,
                inputs: Optional[Tensor] = None,
                **extra) -> Tensor:
        """Generator loss ``-mean D(Q_s | I) * loss_weight`` (no gradient reaches the critic).

        Args:
            student (Tensor): student score map, ``N x num_classes x h x w`` (keeps its graph).
            teacher (Tensor, optional): teacher score map (only shape-checked here).
            inputs (Tensor, optional): image batch ``N x 3 x H x W`` (required if conditional).
            **extra: ignored.

        Returns:
            Tensor: scalar generator loss, already multiplied by ``loss_weight``.
        """
        self._check(student, teacher)
        # The critic is only a measuring device here: keep its parameters out of this graph so the
        # student's backward pass leaves no gradients on them (they are trained only through
        # ``discriminator_loss`` with their own optimizer).
        params = list(self.discriminator.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            score = self.critic(student, inputs)
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)
        return -score.mean() * self.loss_weight

    def discriminator_loss(self,
                           student: Tensor,
                           teacher: Tensor,
                           inputs: Optional[Tensor] = None,
                           data_samples=None,
                           **extra) -> Tensor:
        """WGAN-GP critic loss (student detached); gradients reach only the critic.

        Args:
            student (Tensor): student score map ("fake"), detached here.
            teacher (Tensor): teacher score map ("real"), detached here.
            inputs (Tensor, optional): image batch ``N x 3 x H x W`` (required if conditional).
            data_samples (list, optional): the batch's samples (``alpha='sample'`` reads their
                ``img_path``).
            **extra: ignored.

        Returns:
            Tensor: scalar ``(mean D(fake) - mean D(real) + lambda_gp * GP)``, multiplied by
                ``discriminator_weight``.
        """
        self._check(student, teacher)
        fake = self._prepare(student.detach())
        real = self._prepare(teacher.detach())
        # one critic call for both halves: same (spectral-normalised) weights for real and fake
        scores = self.discriminator(
            torch.cat([self._condition(fake, inputs),
                       self._condition(real, inputs)], dim=0))
        d_fake, d_real = scores.split(fake.shape[0])
        wasserstein = d_fake.mean() - d_real.mean()
        loss = wasserstein
        if self.lambda_gp > 0:
            alpha = self._alphas(real, data_samples)
            loss = loss + self.lambda_gp * self.gradient_penalty(real, fake, inputs, alpha)
        return loss * self.discriminator_weight

    def _alphas(self, real: Tensor, data_samples) -> Tensor:
        """``N x 1 x 1 x 1`` interpolation factors of the penalty (see ``alpha``)."""
        n = real.shape[0]
        if self.alpha == 'global':
            return torch.rand(n, 1, 1, 1, device=real.device, dtype=real.dtype)
        paths = [getattr(s, 'metainfo', {}).get('img_path') for s in (data_samples or [])]
        if len(paths) != n or None in paths:
            raise ValueError(f"{type(self).__name__}(alpha='sample') keys each draw on the "
                             "sample's img_path: the batch's data_samples must carry it (mmseg's "
                             "PackSegInputs keeps it), or use alpha='global'.")
        self.gp_step += 1
        step = int(self.gp_step)
        vals = []
        for p in paths:
            key = zlib.crc32(osp.basename(str(p)).encode()) + 1000003 * step + self.alpha_seed
            g = torch.Generator().manual_seed(key)
            vals.append(float(torch.rand((), generator=g, dtype=torch.float64)))
        return torch.tensor(vals, device=real.device, dtype=real.dtype).view(n, 1, 1, 1)

    def gradient_penalty(self,
                         real: Tensor,
                         fake: Tensor,
                         inputs: Optional[Tensor] = None,
                         alpha: Optional[Tensor] = None) -> Tensor:
        """``E[(||grad_Q D(Q_hat | I)||_2 - 1)^2]`` on random per-sample interpolates.

        The interpolation and the gradient are taken on the (softmaxed) score maps only; the
        image condition is the same for real and fake and is not part of the gradient norm.

        Args:
            real (Tensor): prepared teacher map (after ``input_mode``), ``N x K x h x w``.
            fake (Tensor): prepared student map, same shape.
            inputs (Tensor, optional): image batch (required if conditional).
            alpha (Tensor, optional): ``N x 1 x 1 x 1`` interpolation factors; default
                ``torch.rand`` (the global RNG).

        Returns:
            Tensor: scalar penalty (differentiable w.r.t. the critic parameters).
        """
        if alpha is None:
            alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
        q_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        with torch.enable_grad():
            out = self.discriminator(self._condition(q_hat, inputs))
            grad, = torch.autograd.grad(out.sum(), q_hat, create_graph=True)
        return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
