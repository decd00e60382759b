"""The auto-encoder ("knowledge translator") of knowledge adaptation (He et al., CVPR 2019)."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

#: meta keys a stage-1 checkpoint carries next to the weights (``<prefix>_extra_state``)
META_KEYS = ('arch', 'tap', 'teacher')


def _conv_bn_relu(conv: nn.Module, channels: int, act: bool) -> nn.Sequential:
    layers = [conv]
    if act:
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=False)]
    return nn.Sequential(*layers)


class KAAutoEncoder(nn.Module):
    r"""Convolutional auto-encoder that compresses a frozen teacher's feature map.

    Not registered: :class:`~rtkd.distill.ka.KATeacherAutoEncoder` and
    :class:`~rtkd.distill.ka.KAEncoderConnector` build it from their own arguments.

    "Knowledge Adaptation for Efficient Semantic Segmentation" (Tong He, Chunhua Shen, Zhi Tian,
    Dong Gong, Changming Sun, Youliang Yan, CVPR 2019, arXiv 1903.04688), Sec. 3.1: the encoder
    ``E`` has three (strided) 3x3 convolutions, the decoder ``D`` the symmetric transposed
    convolutions, trained to reconstruct the teacher's last feature map ``F_t``
    (:class:`~rtkd.distill.losses.KAReconstructionLoss`):

    .. math::
        E:\ F_t\ (C_{in} \times H \times W) \to z\ (C_{code} \times H/s \times W/s),\qquad
        D(z) \approx F_t,\qquad s = \prod_k s_k

    Encoder layer ``k``: ``conv3x3(stride s_k, padding 1) -> BN -> ReLU`` (the code is
    non-negative, like the student's feature adapter output it is matched with). Decoder layer
    ``k`` mirrors it with a ``ConvTranspose2d(3, stride s_k, padding 1)`` whose output size is
    the size that entered encoder layer ``k`` (so odd sizes are restored exactly); the last
    decoder layer is linear (no BN/ReLU), so any feature (also pre-ReLU) can be reconstructed.

    Deviations (the paper gives neither widths nor strides per layer; the authors' code is not
    public; torchdistill's ``Paraphraser4FactorTransfer``, which its KTAAD recipe reuses, has
    stride 1, widths ``(C, C/2, C/2)`` and BN + LeakyReLU(0.1) after every layer, the decoder's
    last too): widths and strides are arguments (defaults ``(C, C, C/2)`` and ``(2, 1, 1)``: one
    stride-2 layer, the paper's output-stride-8 teacher -> output-stride-16 student case), ReLU
    instead of LeakyReLU, a linear last decoder layer.

    The module keeps ``meta`` (architecture, teacher tap, teacher identity) and writes it into
    its state dict as ``_extra_state`` (plain str/int/list: loads with torch's safe loader), so
    a stage-1 checkpoint says which teacher feature its encoder was trained on.

    Args:
        in_channels (int): channels of the teacher feature.
        channels (Sequence[int] | None): output widths of the three (or more) encoder layers; the
            last one is the code width. Default ``(C, C, C // 2)``.
        strides (Sequence[int]): stride of each encoder layer (1 or 2). Default ``(2, 1, 1)``.
    """

    # yapf: disable  (yapf's layout of this signature is flake8's E125)
    def __init__(self, in_channels: int, channels: Optional[Sequence[int]] = None,
                 strides: Sequence[int] = (2, 1, 1)) -> None:
        # yapf: enable
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'KAAutoEncoder: in_channels must be a positive int (the teacher '
                             f'feature channels), got {in_channels!r}.')
        if channels is None:
            channels = (in_channels, in_channels, max(1, in_channels // 2))
        channels, strides = [int(c) for c in channels], [int(s) for s in strides]
        if len(channels) != len(strides) or not channels:
            raise ValueError(f'KAAutoEncoder: channels {channels} and strides {strides} need one '
                             f'entry per encoder layer (the paper uses three).')
        if any(c < 1 for c in channels) or any(s not in (1, 2) for s in strides):
            raise ValueError(f'KAAutoEncoder: channels must be positive and strides 1 or 2, got '
                             f'channels={channels}, strides={strides}.')
        self.in_channels = in_channels
        self.code_channels = channels[-1]
        self.strides = strides
        widths = [in_channels] + channels
        self.encoder = nn.Sequential(*[
            _conv_bn_relu(
                nn.Conv2d(widths[k], widths[k + 1], 3, stride=strides[k], padding=1, bias=False),
                widths[k + 1],
                act=True) for k in range(len(channels))
        ])
        # decoder layer j undoes encoder layer k = n-1-j; the last one (k = 0) is linear
        n = len(channels)
        self.decoder = nn.ModuleList([
            _conv_bn_relu(
                nn.ConvTranspose2d(
                    widths[k + 1], widths[k], 3, stride=strides[k], padding=1, bias=k == 0),
                widths[k],
                act=k > 0) for k in reversed(range(n))
        ])
        self.meta: dict = dict(
            arch=dict(in_channels=in_channels, channels=channels, strides=strides))

    # -- meta in the state dict ------------------------------------------------------------
    def get_extra_state(self) -> dict:
        """What a stage-1 checkpoint says about this encoder (architecture, tap, teacher)."""
        return {k: self.meta[k] for k in META_KEYS if k in self.meta}

    def set_extra_state(self, state: dict) -> None:
        """Restore :attr:`meta` (e.g. on ``--resume`` of a stage-1 run)."""
        if isinstance(state, dict):
            self.meta.update(state)

    # -- forward -----------------------------------------------------------------------------
    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'KAAutoEncoder expects N x {self.in_channels} x H x W teacher '
                             f'features but got shape {tuple(x.shape)}; set in_channels='
                             f'{x.shape[1] if x.dim() > 1 else "?"} or tap another feature.')

    def encode(self, x: Tensor, sizes: Optional[List[Tuple[int, int]]] = None) -> Tensor:
        """The code ``E(x)``; ``sizes`` (if given) collects the input size of every layer."""
        self._check(x)
        for layer in self.encoder:
            if sizes is not None:
                sizes.append(tuple(x.shape[-2:]))
            x = layer(x)
        return x

    def decode(self, z: Tensor, sizes: List[Tuple[int, int]]) -> Tensor:
        """``D(z)``; ``sizes`` are the encoder layers' input sizes (from :meth:`encode`)."""
        for layer, size in zip(self.decoder, reversed(sizes)):
            z = layer[0](z, output_size=list(size))
            for m in list(layer)[1:]:
                z = m(z)
        return z

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Encode and reconstruct.

        Args:
            x (Tensor): teacher feature, ``N x in_channels x H x W``.

        Returns:
            tuple[Tensor, Tensor]: the code ``E(x)`` and the reconstruction ``D(E(x))`` (same
            shape as ``x``).
        """
        sizes: List[Tuple[int, int]] = []
        z = self.encode(x, sizes)
        return z, self.decode(z, sizes)
