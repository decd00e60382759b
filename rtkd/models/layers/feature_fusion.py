"""Two-branch feature fusion module of ContextNet (Poudel et al., BMVC 2018) and Fast-SCNN
(Poudel et al., BMVC 2019).

``y = act( BN(Conv1x1(high)) + BN(Conv1x1(act(BN(DWConv3x3_dil=X(Up_X(low)))))) )`` where the
low-resolution input is upsampled by X (4 in both papers) and the depthwise conv is dilated by X.
The upsampling goes to the exact size of the high-resolution input, so inputs whose sizes are not
multiples of the network stride still fuse.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_activation_layer
from mmengine.model import BaseModule
from mmseg.models.utils import resize


class FeatureFusion(BaseModule):
    """Fuse a high-resolution (detail) and a low-resolution (context) feature map by addition.

    Args:
        high_channels (int): channels of the high-resolution input.
        low_channels (int): channels of the low-resolution input.
        out_channels (int): output channels.
        dilation (int): dilation of the depthwise 3 x 3 conv on the upsampled low-res branch
            (= the upsampling factor in the papers). Default: 4.
        conv_cfg (dict, optional): conv layer config. Default: None.
        norm_cfg (dict, optional): norm layer config. Default: ``dict(type='BN')``.
        act_cfg (dict, optional): activation after the depthwise conv and after the sum.
            Default: ReLU.
        align_corners (bool): ``align_corners`` of the bilinear upsampling. Default: False.
        init_cfg (dict, optional): mmengine init config. Default: None.
    """

    def __init__(self,
                 high_channels: int,
                 low_channels: int,
                 out_channels: int,
                 dilation: int = 4,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.align_corners = align_corners
        self.low_dwconv = ConvModule(
            low_channels,
            low_channels,
            3,
            padding=dilation,
            dilation=dilation,
            groups=low_channels,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.low_project = ConvModule(
            low_channels, out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
        self.high_project = ConvModule(
            high_channels, out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
        self.act = build_activation_layer(act_cfg) if act_cfg is not None else nn.Identity()

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """Fuse.

        Args:
            high (Tensor): (N, high_channels, H, W).
            low (Tensor): (N, low_channels, h, w), any h <= H, w <= W.

        Returns:
            Tensor: (N, out_channels, H, W).
        """
        low = resize(low, size=high.shape[2:], mode='bilinear', align_corners=self.align_corners)
        low = self.low_project(self.low_dwconv(low))
        return self.act(self.high_project(high) + low)
