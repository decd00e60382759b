"""Asymmetric (factorised) convolution: a k x 1 conv followed by a 1 x k conv.

Used by ENet, ERFNet and others (Szegedy et al., "Rethinking the Inception Architecture", 2016):
``y = Conv_{1xk}(act(Conv_{kx1}(x)))`` covers a k x k receptive field with ``2k`` instead of ``k^2``
weights per channel pair. ``dilation`` dilates both convolutions along their long axis.
"""
from __future__ import annotations

from typing import Optional

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule


class AsymmetricConv(BaseModule):
    """k x 1 conv (+norm +act) followed by 1 x k conv (+norm +act); spatial size is kept.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels (also used between the two convs).
        kernel_size (int): the long side k (odd). Default: 3.
        stride (int): stride of both convs (along their long axis). Default: 1.
        dilation (int): dilation along the long axis of both convs. Default: 1.
        groups (int): groups of both convs (``in_channels`` for depthwise). Default: 1.
        conv_cfg (dict, optional): conv layer config. Default: None.
        norm_cfg (dict, optional): norm after each conv. Default: ``dict(type='BN')``.
        act_cfg (dict, optional): activation after each conv. Default: ReLU.
        mid_norm_act (bool): apply norm/act after the k x 1 conv too (ERFNet applies only the
            activation there; set False to apply neither). Default: True.
        init_cfg (dict, optional): mmengine init config. Default: None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 dilation: int = 1,
                 groups: int = 1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 mid_norm_act: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if kernel_size % 2 != 1:
            raise ValueError(f'AsymmetricConv needs an odd kernel_size, got {kernel_size}.')
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f'AsymmetricConv groups={groups} must divide '
                             f'in_channels={in_channels} and out_channels={out_channels}.')
        pad = dilation * (kernel_size - 1) // 2
        self.conv_kx1 = ConvModule(
            in_channels,
            out_channels, (kernel_size, 1),
            stride=(stride, 1),
            padding=(pad, 0),
            dilation=(dilation, 1),
            groups=groups,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg if mid_norm_act else None,
            act_cfg=act_cfg if mid_norm_act else None)
        self.conv_1xk = ConvModule(
            out_channels,
            out_channels, (1, kernel_size),
            stride=(1, stride),
            padding=(0, pad),
            dilation=(1, dilation),
            groups=groups,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor): (N, C_in, H, W). Returns: Tensor: (N, C_out, H', W')."""
        return self.conv_1xk(self.conv_kx1(x))
