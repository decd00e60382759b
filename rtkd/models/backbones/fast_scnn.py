"""Fast-SCNN backbone (Poudel, Liwicki & Cipolla, "Fast-SCNN: Fast Semantic Segmentation
Network", BMVC 2019, arXiv 1902.04502), as described in the paper.

Layout (Table 1 of the paper, input 1024 x 2048):

* learning to downsample: Conv 3x3 s2 (32) -> DSConv s2 (48) -> DSConv s2 (64)       -> 1/8
* global feature extractor: bottlenecks (t, c, n, s) = (6,64,3,2), (6,96,3,2), (6,128,3,1)
  -> pyramid pooling (bins 1, 2, 3, 6; 1 x 1 post conv to 128)                      -> 1/32
* feature fusion: low-res branch upsampled x4, depthwise 3x3 dilation 4, 1x1; high-res 1x1;
  sum, ReLU                                                                          -> 1/8

The classifier (2 DSConv + 1x1 conv) is :class:`rtkd.models.decode_heads.RTFastSCNNHead`.
Every non-linearity is ReLU (the paper found ReLU better than ReLU6 for Fast-SCNN); BN follows
every conv. The paper has no official code; where it is silent this follows MobileNetV2 (no
activation between the depthwise and pointwise steps of a DSConv, linear bottleneck output).

Differences to mmseg's ``FastSCNN`` (1.40 M params with its head): 1 x 1 instead of 3 x 3 conv
after pyramid pooling, dilation 4 in the fusion depthwise conv, ReLU instead of ReLU6.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ..layers.depthwise_separable import DSConv
from ..layers.feature_fusion import FeatureFusion
from ..layers.inverted_residual import make_bottleneck_stage
from ..layers.pyramid_pooling import PyramidPooling


@MODELS.register_module()
class RTFastSCNN(BaseModule):
    """Fast-SCNN backbone: learning to downsample + global feature extractor + feature fusion.

    Args:
        in_channels (int): image channels. Default: 3.
        downsample_channels (Sequence[int]): channels of the three stride-2 layers of the
            learning-to-downsample module. Default: (32, 48, 64).
        global_channels (Sequence[int]): output channels of the three bottleneck stages.
            Default: (64, 96, 128).
        global_blocks (Sequence[int]): blocks per bottleneck stage. Default: (3, 3, 3).
        global_strides (Sequence[int]): strides of the bottleneck stages. Default: (2, 2, 1).
        expand_ratio (int): bottleneck expansion factor t. Default: 6.
        pool_bins (Sequence[int]): pyramid pooling bins. Default: (1, 2, 3, 6).
        ppm_kernel_size (int): kernel of the conv after pyramid pooling (1 in the paper).
            Default: 1.
        fusion_channels (int): output channels of pyramid pooling and feature fusion.
            Default: 128.
        fusion_dilation (int): dilation of the fusion depthwise conv. Default: 4.
        out_indices (Sequence[int]): which of (downsample 1/8, global 1/32, fused 1/8) to return.
            Default: (0, 1, 2).
        conv_cfg (dict, optional): conv layer config. Default: None.
        norm_cfg (dict, optional): norm layer config. Default: ``dict(type='BN')``.
        act_cfg (dict, optional): activation. Default: ReLU.
        align_corners (bool): ``align_corners`` for the upsampling. Default: False.
        init_cfg (dict or list, optional): mmengine init config. Default: Kaiming for convs,
            constant 1 for norms.
    """

    def __init__(
        self,
        in_channels: int = 3,
        downsample_channels: Sequence[int] = (32, 48, 64),
        global_channels: Sequence[int] = (64, 96, 128),
        global_blocks: Sequence[int] = (3, 3, 3),
        global_strides: Sequence[int] = (2, 2, 1),
        expand_ratio: int = 6,
        pool_bins: Sequence[int] = (1, 2, 3, 6),
        ppm_kernel_size: int = 1,
        fusion_channels: int = 128,
        fusion_dilation: int = 4,
        out_indices: Sequence[int] = (0, 1, 2),
        conv_cfg: Optional[dict] = None,
        norm_cfg: Optional[dict] = dict(type='BN'),
        act_cfg: Optional[dict] = dict(type='ReLU'),
        align_corners: bool = False,
        init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']))
    ) -> None:
        super().__init__(list(init_cfg) if isinstance(init_cfg, tuple) else init_cfg)
        if len(downsample_channels) != 3:
            raise ValueError(f'downsample_channels must have 3 entries (conv, DSConv, DSConv), '
                             f'got {downsample_channels}.')
        if not len(global_channels) == len(global_blocks) == len(global_strides):
            raise ValueError(f'global_channels, global_blocks and global_strides must have the '
                             f'same length, got {global_channels}, {global_blocks}, '
                             f'{global_strides}.')
        if any(i not in (0, 1, 2) for i in out_indices) or len(out_indices) == 0:
            raise ValueError(f'out_indices must be a non-empty subset of (0, 1, 2) '
                             f'(downsample, global, fused), got {out_indices}.')
        self.out_indices = tuple(out_indices)
        c1, c2, c3 = downsample_channels
        # learning to downsample
        self.downsample = torch.nn.Sequential(
            ConvModule(
                in_channels,
                c1,
                3,
                stride=2,
                padding=1,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg),
            DSConv(c1, c2, 3, stride=2, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg),
            DSConv(c2, c3, 3, stride=2, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg))
        # global feature extractor
        stages, prev = [], c3
        for c, n, s in zip(global_channels, global_blocks, global_strides):
            stages.append(
                make_bottleneck_stage(
                    prev,
                    c,
                    n,
                    s,
                    expand_ratio,
                    conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg))
            prev = c
        self.bottlenecks = torch.nn.Sequential(*stages)
        self.ppm = PyramidPooling(
            prev,
            fusion_channels,
            bins=pool_bins,
            post_kernel_size=ppm_kernel_size,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            align_corners=align_corners)
        # feature fusion
        self.fusion = FeatureFusion(
            c3,
            fusion_channels,
            fusion_channels,
            dilation=fusion_dilation,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            align_corners=align_corners)
        #: channels of the three possible outputs (downsample, global, fused)
        self.out_channels: List[int] = [c3, fusion_channels, fusion_channels]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Args: x (Tensor): (N, C, H, W) images, any H, W.

        Returns:
            tuple[Tensor]: the outputs selected by ``out_indices`` among (downsample features
            (N, 64, H/8, W/8), global features (N, 128, H/32, W/32), fused (N, 128, H/8, W/8)).
        """
        high = self.downsample(x)
        low = self.ppm(self.bottlenecks(high))
        fused = self.fusion(high, low)
        outs = (high, low, fused)
        return tuple(outs[i] for i in self.out_indices)
