"""LinkNet decoder (Chaurasia & Culurciello, VCIP 2017, arXiv 1707.03718).

Decoder block ``m -> n`` (one per encoder block, deepest first)::

    conv1x1 m -> m/4, BN, ReLU
    full-conv (transposed) 3x3 stride s m/4 -> m/4, BN, ReLU
    conv1x1 m/4 -> n, BN, ReLU

and ``d_{i-1} = decoder_i(d_i) + e_{i-1}``, where ``e_{i-1}`` is the *input* of encoder block ``i``
(the stem output for block 1). The final block maps the 1/4-resolution, 64-channel result to
full resolution::

    full-conv 3x3 s2 64 -> 32, BN, ReLU;  conv 3x3 32 -> 32, BN, ReLU;  full-conv 2x2 s2 32 -> C

11.5 M parameters with a ResNet-18 encoder and 19 classes.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS


def transposed_conv_to(deconv: nn.ConvTranspose2d, x: torch.Tensor,
                       size: Sequence[int]) -> torch.Tensor:
    """Apply a transposed conv so that its output has spatial ``size`` (odd sizes included).

    When ``size`` is reachable with some ``output_padding`` (the usual case: the encoder halved an
    odd size with ``ceil``), the transposed conv produces it exactly; otherwise the default output
    is bilinearly resized.

    Args:
        deconv (nn.ConvTranspose2d): the layer.
        x (Tensor): its input, ``N x C x h x w``.
        size (Sequence[int]): wanted ``(H, W)``.

    Returns:
        Tensor: ``N x C' x H x W``.
    """
    size = tuple(int(s) for s in size)
    lo = [(x.shape[2 + i] - 1) * deconv.stride[i] - 2 * deconv.padding[i] + deconv.dilation[i] *
          (deconv.kernel_size[i] - 1) + 1 for i in range(2)]
    if all(lo[i] <= size[i] < lo[i] + max(deconv.stride[i], deconv.dilation[i]) for i in range(2)):
        return deconv(x, output_size=list(size))
    y = deconv(x)
    return y if tuple(y.shape[2:]) == size else F.interpolate(
        y, size=size, mode='bilinear', align_corners=False)


class _DeconvBNAct(nn.Module):
    """Transposed conv + norm + activation, used inside the LinkNet decoder.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): kernel size.
        stride (int): upsampling factor.
        norm_cfg (dict, optional): norm layer config (None: no norm, conv with bias).
        act_cfg (dict, optional): activation config (None: no activation).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 norm_cfg: Optional[dict], act_cfg: Optional[dict]) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.conv = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=pad,
            output_padding=stride - 1 if stride > 1 else 0,
            bias=norm_cfg is None)
        self.bn = nn.Identity() if norm_cfg is None else build_norm_layer(norm_cfg, out_channels)[1]
        self.act = nn.Identity() if act_cfg is None else build_activation_layer(act_cfg)

    def forward(self, x: torch.Tensor, size: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Upsample ``x`` (to ``size`` if given, else by ``stride``)."""
        x = self.conv(x) if size is None else transposed_conv_to(self.conv, x, size)
        return self.act(self.bn(x))


class LinkNetDecoderBlock(nn.Module):
    """LinkNet decoder block ``m -> n``: 1x1 (m -> m/4), 3x3 full-conv (stride s), 1x1 (m/4 -> n).

    Args:
        in_channels (int): ``m``.
        out_channels (int): ``n``.
        stride (int): upsampling factor of the full convolution (1 or 2).
        conv_cfg (dict, optional): conv config of the 1x1 convs.
        norm_cfg (dict): norm config.
        act_cfg (dict): activation config.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 2,
        conv_cfg: Optional[dict] = None,
        norm_cfg: dict = dict(type='BN'),
        act_cfg: dict = dict(type='ReLU')
    ) -> None:
        super().__init__()
        if in_channels % 4 != 0:
            raise ValueError(f'LinkNet decoder blocks need in_channels divisible by 4, got '
                             f'{in_channels}.')
        mid = in_channels // 4
        self.reduce = ConvModule(
            in_channels, mid, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.up = _DeconvBNAct(mid, mid, 3, stride, norm_cfg, act_cfg)
        self.expand = ConvModule(
            mid, out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Decode ``x`` to spatial ``size`` (the skip connection's size)."""
        return self.expand(self.up(self.reduce(x), size))


@MODELS.register_module()
class RTLinkNetHead(BaseDecodeHead):
    """LinkNet decoder and full-resolution classifier as an mmseg decode head.

    Expects the encoder outputs ``(e_0, e_1, ..., e_k)`` where ``e_0`` is the stem output (input of
    encoder block 1) and ``e_i`` the output of encoder block ``i`` (e.g. ``RTResNet`` with
    ``out_stem=True``). ``conv_seg`` is the final 2x2 full convolution (stride 2) to classes, so
    the logits are at 4x the stem resolution (= input size up to rounding; mmseg resizes them to
    the image size).

    Args:
        in_channels (Sequence[int]): channels of ``e_0 .. e_k``, e.g. ``(64, 64, 128, 256, 512)``.
        channels (int): width of the final block (32 in the paper).
        dec_strides (Sequence[int]): upsampling factor of decoder blocks 1..k; must match the
            encoder block strides (ResNet: ``(1, 2, 2, 2)``; the paper's encoder strides every
            block: ``(2, 2, 2, 2)``).
        **kwargs: forwarded to ``BaseDecodeHead`` (``num_classes``, ``norm_cfg``, ``act_cfg``,
            ``loss_decode``, ``align_corners`` ...). ``input_transform`` is always
            ``'multiple_select'``.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (64, 64, 128, 256, 512),
                 channels: int = 32,
                 dec_strides: Sequence[int] = (1, 2, 2, 2),
                 **kwargs) -> None:
        in_channels = list(in_channels)
        kwargs.setdefault('in_index', list(range(len(in_channels))))
        kwargs['input_transform'] = 'multiple_select'
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(in_channels, channels, **kwargs)
        if len(dec_strides) != len(in_channels) - 1:
            raise ValueError(f'RTLinkNetHead needs one decoder stride per encoder block '
                             f'({len(in_channels) - 1}), got dec_strides={tuple(dec_strides)}.')
        self.dec_strides = tuple(dec_strides)
        self.decoders = nn.ModuleList([
            LinkNetDecoderBlock(in_channels[i], in_channels[i - 1], dec_strides[i - 1],
                                self.conv_cfg, self.norm_cfg, self.act_cfg)
            for i in range(1, len(in_channels))
        ])
        self.final_up = _DeconvBNAct(in_channels[0], channels, 3, 2, self.norm_cfg, self.act_cfg)
        self.final_conv = ConvModule(
            channels,
            channels,
            3,
            padding=1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        # The paper's last layer, a 2x2 full convolution, is the classifier (keeps the usual
        # ``decode_head.conv_seg`` name for distillation taps and replaces the 1x1 one).
        self.conv_seg = nn.ConvTranspose2d(channels, self.num_classes, 2, stride=2)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """Decode encoder features to class logits.

        Args:
            inputs (list[Tensor]): backbone outputs.

        Returns:
            Tensor: logits, ``N x num_classes x 4h x 4w`` for a stem output of size ``h x w``.
        """
        feats = self._transform_inputs(inputs)
        if len(feats) != len(self.in_channels):
            raise ValueError(f'RTLinkNetHead expects {len(self.in_channels)} feature maps (stem + '
                             f'blocks), got {len(feats)}; use RTResNet(out_stem=True).')
        x = feats[-1]
        for i in range(len(feats) - 1, 0, -1):
            skip = feats[i - 1]
            x = self.decoders[i - 1](x, skip.shape[2:]) + skip
        x = self.final_conv(self.final_up(x))
        return self.cls_seg(x)
