"""ESPNet encoder (Mehta, Rastegari, Caspi, Shapiro & Hajishirzi, "ESPNet: Efficient Spatial
Pyramid of Dilated Convolutions for Semantic Segmentation", ECCV 2018, arXiv 1803.06815).

Encoder of the full ESPNet (p = 2, q = 8), following the official code (sacmehta/ESPNet):

* level 1: Conv 3x3 s2 (16) + BN + PReLU; concat with the image average-pooled once
  (input reinforcement) -> BN + PReLU                                       -> 19 ch, 1/2
* level 2: down-sampling ESP (19 -> 64, s2) -> p x ESP(64); concat [ESP out, down-sampling out,
  image pooled twice] -> BN + PReLU                                         -> 131 ch, 1/4
* level 3: down-sampling ESP (131 -> 128, s2) -> q x ESP(128); concat [down-sampling out, ESP
  out] -> BN + PReLU                                                        -> 256 ch, 1/8

Image pooling is ``AvgPool 3x3, stride 2, padding 1`` (repeated), which gives the same
``ceil(H/2)`` sizes as the stride-2 convs, so any input size works. PReLU is per channel.
The class-space decoder is :class:`rtkd.models.decode_heads.RTESPNetHead`.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ..layers.esp_module import ESPModule, norm_prelu


@MODELS.register_module()
class RTESPNet(BaseModule):
    """ESPNet encoder with input reinforcement.

    Args:
        in_channels (int): image channels. Default: 3.
        stem_channels (int): channels of the first (level-1) conv. Default: 16.
        level_channels (Sequence[int]): output channels of the level-2 and level-3 ESP modules.
            Default: (64, 128).
        num_blocks (Sequence[int]): ESP modules after the down-sampling one at levels 2 and 3,
            i.e. (p, q). Default: (2, 8).
        dilations (Sequence[int]): dilations of every ESP module. Default: (1, 2, 4, 8, 16).
        input_reinforcement (bool): concatenate the down-sampled image at 1/2 and 1/4.
            Default: True.
        conv_cfg (dict, optional): conv layer config. Default: None.
        norm_cfg (dict, optional): norm layer config. Default: ``dict(type='BN')``.
        init_cfg (dict or list, optional): mmengine init config. Default: Kaiming for convs,
            constant 1 for norms.
    """

    def __init__(
        self,
        in_channels: int = 3,
        stem_channels: int = 16,
        level_channels: Sequence[int] = (64, 128),
        num_blocks: Sequence[int] = (2, 8),
        dilations: Sequence[int] = (1, 2, 4, 8, 16),
        input_reinforcement: bool = True,
        conv_cfg: Optional[dict] = None,
        norm_cfg: Optional[dict] = dict(type='BN'),
        init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                  dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']))
    ) -> None:
        super().__init__(list(init_cfg) if isinstance(init_cfg, tuple) else init_cfg)
        if len(level_channels) != 2 or len(num_blocks) != 2:
            raise ValueError(f'level_channels and num_blocks need 2 entries (levels 2 and 3), got '
                             f'{level_channels} and {num_blocks}.')
        if any(n < 0 for n in num_blocks):
            raise ValueError(f'num_blocks (p, q) must be >= 0, got {num_blocks}.')
        self.input_reinforcement = input_reinforcement
        img = in_channels if input_reinforcement else 0
        c2, c3 = level_channels
        esp = dict(dilations=dilations, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.stem = nn.Sequential(
            build_conv_layer(
                conv_cfg, in_channels, stem_channels, 3, stride=2, padding=1, bias=False),
            *norm_prelu(stem_channels, norm_cfg))
        l1 = stem_channels + img
        self.post1 = norm_prelu(l1, norm_cfg)
        self.down2 = ESPModule(l1, c2, stride=2, **esp)
        self.level2 = nn.Sequential(*[ESPModule(c2, c2, **esp) for _ in range(num_blocks[0])])
        l2 = 2 * c2 + img
        self.post2 = norm_prelu(l2, norm_cfg)
        self.down3 = ESPModule(l2, c3, stride=2, **esp)
        self.level3 = nn.Sequential(*[ESPModule(c3, c3, **esp) for _ in range(num_blocks[1])])
        l3 = 2 * c3
        self.post3 = norm_prelu(l3, norm_cfg)
        #: channels of the three outputs (1/2, 1/4, 1/8)
        self.out_channels: List[int] = [l1, l2, l3]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args: x (Tensor): (N, C, H, W) images, any H, W.

        Returns:
            tuple[Tensor]: level-1 (N, 19, H/2, W/2), level-2 (N, 131, H/4, W/4) and level-3
            (N, 256, H/8, W/8) features (sizes rounded up).
        """
        out1 = self.stem(x)
        if self.input_reinforcement:
            img1 = self.pool(x)
            img2 = self.pool(img1)
            out1 = torch.cat([out1, img1], dim=1)
        out1 = self.post1(out1)
        d2 = self.down2(out1)
        out2 = [self.level2(d2), d2]
        if self.input_reinforcement:
            out2.append(img2)
        out2 = self.post2(torch.cat(out2, dim=1))
        d3 = self.down3(out2)
        out3 = self.post3(torch.cat([d3, self.level3(d3)], dim=1))
        return out1, out2, out3
