"""ContextNet backbone, cn14 variant (Poudel, Bonde, Liwicki & Zach, "ContextNet: Exploring
Context and Detail for Semantic Segmentation in Real-time", BMVC 2018, arXiv 1805.04554).

Two branches joined by feature fusion:

* deep (context) branch on the image downscaled by 4 (cn14: "1/4 input"): Conv 3x3 s2 (32) ->
  MobileNetV2 bottlenecks (t, c, n, s) = (1,32,1,1), (6,32,1,1), (6,48,3,2), (6,64,3,2),
  (6,96,2,1), (6,128,2,1)                                      -> 1/32 of the full image
* shallow (detail) branch on the full image: Conv 3x3 s2 (32) -> DSConv s2 (64) -> DSConv s2
  (128) -> DSConv s1 (128)                                      -> 1/8
* feature fusion: deep output upsampled x4, depthwise 3x3 dilation 4, 1x1; shallow 1x1; sum, ReLU.

The classifier (2 DSConv + 1x1 conv, as later reused by Fast-SCNN) is
:class:`rtkd.models.decode_heads.RTFastSCNNHead`. With 19 classes the network has 0.875 M
parameters (paper: 0.85 M for cn14). The paper has no official code; where it is silent this
follows MobileNetV2: ReLU6 inside the bottlenecks, no activation between the depthwise and pointwise
steps of a DSConv, BN after every conv. The image is downscaled with bilinear interpolation to
``ceil(H/4) x ceil(W/4)``, so any input size works.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS

from ..layers.depthwise_separable import DSConv
from ..layers.feature_fusion import FeatureFusion
from ..layers.inverted_residual import make_bottleneck_stage

#: (t, c, n, s) rows of the cn14 deep branch.
CN14_BOTTLENECKS = ((1, 32, 1, 1), (6, 32, 1, 1), (6, 48, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1),
                    (6, 128, 2, 1))


@MODELS.register_module()
class RTContextNet(BaseModule):
    """ContextNet backbone: deep branch at low resolution + shallow branch at full resolution.

    Args:
        in_channels (int): image channels. Default: 3.
        deep_scale (int): factor by which the image is downscaled for the deep branch (4 for
            cn14, 2 for cn12, 8 for cn18). Default: 4.
        deep_stem_channels (int): channels of the deep branch's first conv. Default: 32.
        deep_bottlenecks (Sequence[Sequence[int]]): (t, c, n, s) rows of the deep branch.
            Default: :data:`CN14_BOTTLENECKS`.
        shallow_channels (Sequence[int]): channels of the shallow branch's conv and three
            DSConvs. Default: (32, 64, 128, 128).
        shallow_strides (Sequence[int]): strides of those four layers. Default: (2, 2, 2, 1).
        fusion_channels (int): output channels of the feature fusion. Default: 128.
        fusion_dilation (int): dilation of the fusion depthwise conv. Default: 4.
        out_indices (Sequence[int]): which of (shallow 1/8, deep 1/32, fused 1/8) to return.
            Default: (0, 1, 2).
        conv_cfg (dict, optional): conv layer config. Default: None.
        norm_cfg (dict, optional): norm layer config. Default: ``dict(type='BN')``.
        act_cfg (dict, optional): activation of plain convs, DSConvs and the fusion.
            Default: ReLU.
        bottleneck_act_cfg (dict, optional): activation inside the bottlenecks. Default: ReLU6.
        align_corners (bool): ``align_corners`` of the resizes. Default: False.
        init_cfg (dict or list, optional): mmengine init config. Default: Kaiming for convs,
            constant 1 for norms.
    """

    def __init__(
        self,
        in_channels: int = 3,
        deep_scale: int = 4,
        deep_stem_channels: int = 32,
        deep_bottlenecks: Sequence[Sequence[int]] = CN14_BOTTLENECKS,
        shallow_channels: Sequence[int] = (32, 64, 128, 128),
        shallow_strides: Sequence[int] = (2, 2, 2, 1),
        fusion_channels: int = 128,
        fusion_dilation: int = 4,
        out_indices: Sequence[int] = (0, 1, 2),
        conv_cfg: Optional[dict] = None,
        norm_cfg: Optional[dict] = dict(type='BN'),
        act_cfg: Optional[dict] = dict(type='ReLU'),
        bottleneck_act_cfg: Optional[dict] = dict(type='ReLU6'),
        align_corners: bool = False,
        init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']))
    ) -> None:
        super().__init__(list(init_cfg) if isinstance(init_cfg, tuple) else init_cfg)
        if deep_scale < 1:
            raise ValueError(f'deep_scale must be >= 1, got {deep_scale}.')
        if any(len(row) != 4 for row in deep_bottlenecks) or len(deep_bottlenecks) == 0:
            raise ValueError(f'deep_bottlenecks must be non-empty (t, c, n, s) rows, got '
                             f'{deep_bottlenecks}.')
        if len(shallow_channels) != len(shallow_strides) or len(shallow_channels) < 1:
            raise ValueError(f'shallow_channels and shallow_strides must have the same '
                             f'(non-zero) length, got {shallow_channels} and {shallow_strides}.')
        if any(i not in (0, 1, 2) for i in out_indices) or len(out_indices) == 0:
            raise ValueError(f'out_indices must be a non-empty subset of (0, 1, 2) '
                             f'(shallow, deep, fused), got {out_indices}.')
        self.deep_scale = deep_scale
        self.out_indices = tuple(out_indices)
        self.align_corners = align_corners
        # deep branch
        deep: List[nn.Module] = [
            ConvModule(
                in_channels,
                deep_stem_channels,
                3,
                stride=2,
                padding=1,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)
        ]
        prev = deep_stem_channels
        for t, c, n, s in deep_bottlenecks:
            deep.append(
                make_bottleneck_stage(
                    prev,
                    c,
                    n,
                    s,
                    t,
                    conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg,
                    act_cfg=bottleneck_act_cfg))
            prev = c
        self.deep = nn.Sequential(*deep)
        deep_channels = prev
        # shallow branch
        shallow: List[nn.Module] = [
            ConvModule(
                in_channels,
                shallow_channels[0],
                3,
                stride=shallow_strides[0],
                padding=1,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)
        ]
        for i in range(1, len(shallow_channels)):
            shallow.append(
                DSConv(
                    shallow_channels[i - 1],
                    shallow_channels[i],
                    3,
                    stride=shallow_strides[i],
                    conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg))
        self.shallow = nn.Sequential(*shallow)
        self.fusion = FeatureFusion(
            shallow_channels[-1],
            deep_channels,
            fusion_channels,
            dilation=fusion_dilation,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            align_corners=align_corners)
        #: channels of the three possible outputs (shallow, deep, fused)
        self.out_channels: List[int] = [shallow_channels[-1], deep_channels, fusion_channels]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Args: x (Tensor): (N, C, H, W) images, any H, W.

        Returns:
            tuple[Tensor]: the outputs selected by ``out_indices`` among (shallow features
            (N, 128, H/8, W/8), deep features (N, 128, H/32, W/32), fused (N, 128, H/8, W/8)).
        """
        h, w = x.shape[2:]
        small = x
        if self.deep_scale > 1:
            size = (math.ceil(h / self.deep_scale), math.ceil(w / self.deep_scale))
            small = resize(x, size=size, mode='bilinear', align_corners=self.align_corners)
        deep = self.deep(small)
        shallow = self.shallow(x)
        fused = self.fusion(shallow, deep)
        outs = (shallow, deep, fused)
        return tuple(outs[i] for i in self.out_indices)
