"""MobileNetV2 bottleneck / inverted residual (Sandler et al., CVPR 2018, arXiv 1801.04381).

Block: ``y = x + PW_linear(DW_3x3(PW_expand(x)))`` (residual only when stride 1 and
C_in == C_out): expand 1x1 conv to ``t * C_in`` channels (+BN +act), 3x3 depthwise (+BN +act),
linear 1x1 projection (+BN, no activation). The block itself is mmseg's
:class:`mmseg.models.utils.InvertedResidual`; this file adds the "(t, c, n, s)" stage builder
used by the MobileNetV2 tables of Fast-SCNN and ContextNet.
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn
from mmseg.models.utils import InvertedResidual

__all__ = ['InvertedResidual', 'make_bottleneck_stage']


def make_bottleneck_stage(
    in_channels: int,
    out_channels: int,
    num_blocks: int,
    stride: int = 1,
    expand_ratio: int = 6,
    dilation: int = 1,
    conv_cfg: Optional[dict] = None,
    norm_cfg: Optional[dict] = dict(type='BN'),
    act_cfg: Optional[dict] = dict(type='ReLU6')
) -> nn.Sequential:
    """Build one "(t, c, n, s)" row of a MobileNetV2 table: ``n`` inverted residual blocks.

    The first block maps ``in_channels -> out_channels`` with ``stride``; the others keep
    ``out_channels`` at stride 1 (and are residual).

    Args:
        in_channels (int): input channels of the first block.
        out_channels (int): output channels ``c`` of every block.
        num_blocks (int): number of blocks ``n`` (>= 1).
        stride (int): stride ``s`` of the first block (1 or 2).
        expand_ratio (int): expansion factor ``t``.
        dilation (int): dilation of the depthwise convs.
        conv_cfg (dict, optional): conv layer config.
        norm_cfg (dict, optional): norm layer config.
        act_cfg (dict, optional): activation (ReLU6 in MobileNetV2, ReLU in Fast-SCNN).

    Returns:
        nn.Sequential: the stage.
    """
    if num_blocks < 1 or stride not in (1, 2) or expand_ratio < 1:
        raise ValueError(f'bottleneck stage needs num_blocks >= 1, stride in (1, 2) and '
                         f'expand_ratio >= 1, got num_blocks={num_blocks}, stride={stride}, '
                         f'expand_ratio={expand_ratio}.')
    blocks = []
    for i in range(num_blocks):
        blocks.append(
            InvertedResidual(
                in_channels if i == 0 else out_channels,
                out_channels,
                stride=stride if i == 0 else 1,
                expand_ratio=expand_ratio,
                dilation=dilation,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg))
    return nn.Sequential(*blocks)
