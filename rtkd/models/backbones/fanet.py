"""FANet encoder with fast attention and top-down fusion (Hu et al., RA-L 2021, arXiv 2007.03815).

A ResNet-18/34 with an extra stride in stage 1 gives features ``f_1..f_4`` at 1/8, 1/16, 1/32,
1/64. Every stage gets a fast attention block (:class:`rtkd.models.layers.FastAttention`), then
features are fused top-down (deepest first)::

    p_4 = FA(f_4)
    p_i = FA(f_i) + up(u_{i+1})            u_i = act(BN(conv1x1(p_i)))    (C_i -> C_i / 2)
    s_i = act(BN(conv3x3(p_i)))            (C_i -> 128, "smooth")

Only the branches that are used exist: ``u`` for stages 2..4, ``s`` for stages 1, 3 and 4.
The official code builds ``u`` as a 1x1 conv with ``padding=1`` (a border of ``act(BN(0))``
pixels, so ``u_i`` is 2 pixels larger per dimension before it is resized to the next stage);
here ``u`` is unpadded by default and ``up_padding=1`` reproduces the official layer.
The backbone returns ``(s_1, s_3, s_4)`` = (1/8, 1/32, 1/64), 128 channels each: the decode head
(:class:`rtkd.models.decode_heads.RTFANetHead`) concatenates ``s_1`` and upsampled ``s_3``
(output stride 8) and the two auxiliary heads of the paper's training read ``s_3`` and ``s_4``.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS

from ..layers.fast_attention import FastAttention

# the deepest stage feeds u, s; stage 3: u, s; stage 2: u; stage 1: s (the official layout)
_USES = {0: (False, True), 1: (True, False), 2: (True, True), 3: (True, True)}


class _FANetStage(nn.Module):
    """Fast attention + optional top-down input + optional ``up`` / ``smooth`` outputs.

    Args:
        in_channels (int): stage width ``C_i``.
        out_channels (int): width of the smooth output (128).
        with_up (bool): build the ``up`` branch (``C_i -> C_i / 2`` 1x1 conv).
        with_smooth (bool): build the ``smooth`` branch (3x3 conv to ``out_channels``).
        up_padding (int): padding of the 1x1 ``up`` conv (official code: 1).
        qk_channels (int): query/key width of the attention.
        scale_by_pixels (bool): 1/n scaling in the attention.
        conv_cfg, norm_cfg, act_cfg (dict): layer configs.
        align_corners (bool): for the bilinear upsampling of the top-down input.
    """

    def __init__(self, in_channels: int, out_channels: int, with_up: bool, with_smooth: bool,
                 up_padding: int, qk_channels: int, scale_by_pixels: bool, conv_cfg: Optional[dict],
                 norm_cfg: dict, act_cfg: dict, align_corners: bool) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.attention = FastAttention(in_channels, qk_channels, scale_by_pixels, conv_cfg,
                                       norm_cfg, act_cfg)
        cfg = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.up = ConvModule(
            in_channels, in_channels // 2, 1, padding=up_padding, **cfg) if with_up else None
        self.smooth = ConvModule(
            in_channels, out_channels, 3, padding=1, **cfg) if with_smooth else None

    def forward(
            self, x: torch.Tensor,
            top: Optional[torch.Tensor]) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Return ``(up, smooth)`` of ``FA(x) + resize(top)`` (``None`` for absent branches)."""
        p = self.attention(x)
        if top is not None:
            p = p + resize(top, size=p.shape[2:], mode='bilinear', align_corners=self.align_corners)
        return (self.up(p) if self.up is not None else None,
                self.smooth(p) if self.smooth is not None else None)


@MODELS.register_module()
class RTFANet(BaseModule):
    """FANet backbone: ResNet (extra stride in stage 1) + per-stage fast attention + fusion.

    Args:
        resnet_cfg (dict): config of the ResNet (built with ``MODELS``); its 4 stage outputs are
            used. Default: ``RTResNet`` depth 18, ``strides=(2, 2, 2, 2)``, plain stem, ImageNet
            weights left to the config's ``init_cfg``.
        out_channels (int): width of the smooth outputs (128 in the paper).
        qk_channels (int): query/key width of the fast attention (32).
        scale_by_pixels (bool): the paper's 1/n scaling in the fast attention.
        up_padding (int): padding of the 1x1 ``up`` convs. 0 (default) is the project's choice;
            the official code uses 1 (``ConvBNReLU(ks=1, padding=1)``), which adds a border of
            constant ``act(BN(0))`` pixels that the resize to the next stage then blends in.
        conv_cfg (dict, optional): conv config of the fusion layers.
        norm_cfg (dict): norm config of the fusion layers (the ResNet has its own in
            ``resnet_cfg``).
        act_cfg (dict): activation of the fusion layers (official code: LeakyReLU 0.01).
        align_corners (bool): bilinear upsampling mode.
        init_cfg (dict, optional): mmengine init config of the fusion layers.

    Returns (forward):
        tuple[Tensor]: ``(s_1, s_3, s_4)`` at 1/8, 1/32, 1/64 (for the default strides).
    """

    def __init__(self,
                 resnet_cfg: dict = dict(type='RTResNet', depth=18, strides=(2, 2, 2, 2)),
                 out_channels: int = 128,
                 qk_channels: int = 32,
                 scale_by_pixels: bool = True,
                 up_padding: int = 0,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU'),
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if up_padding not in (0, 1):
            raise ValueError(f'RTFANet up_padding must be 0 (default) or 1 (official code), '
                             f'got {up_padding}.')
        resnet_cfg = dict(resnet_cfg)
        resnet_cfg.setdefault('out_indices', (0, 1, 2, 3))
        if len(resnet_cfg['out_indices']) != 4:
            raise ValueError(f'RTFANet needs the 4 ResNet stages, got out_indices='
                             f'{resnet_cfg["out_indices"]}.')
        self.resnet = MODELS.build(resnet_cfg)
        widths = self._stage_widths()
        self.stages = nn.ModuleList([
            _FANetStage(widths[i], out_channels, *_USES[i], up_padding, qk_channels,
                        scale_by_pixels, conv_cfg, norm_cfg, act_cfg, align_corners)
            for i in range(4)
        ])
        for i in range(3):
            if widths[i + 1] // 2 != widths[i]:
                raise ValueError(f'RTFANet top-down fusion needs each stage twice as wide as the '
                                 f'previous one, got widths {widths}.')

    def _stage_widths(self) -> List[int]:
        """Output channels of the four ResNet stages (from its attributes, else by a probe)."""
        block = getattr(self.resnet, 'block', None)
        base = getattr(self.resnet, 'base_channels', None)
        if block is not None and base is not None:
            return [base * 2**i * block.expansion for i in range(4)]
        in_channels = getattr(getattr(self.resnet, 'conv1', None), 'in_channels', 3)
        with torch.no_grad():
            was_training = self.resnet.training
            self.resnet.eval()
            feats = self.resnet(torch.zeros(1, in_channels, 64, 64))
            self.resnet.train(was_training)
        return [int(f.shape[1]) for f in feats]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode ``x`` and fuse top-down.

        Args:
            x (Tensor): images, ``N x 3 x H x W`` (any size).

        Returns:
            tuple[Tensor]: ``(s_1, s_3, s_4)``, ``out_channels`` wide each.
        """
        feats = self.resnet(x)
        smooth: List[Optional[torch.Tensor]] = [None] * 4
        top = None
        for i in range(3, -1, -1):
            top, smooth[i] = self.stages[i](feats[i], top)
        return smooth[0], smooth[2], smooth[3]
