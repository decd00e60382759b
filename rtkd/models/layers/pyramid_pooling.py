"""Pyramid pooling module (PSPNet, Zhao et al., CVPR 2017, arXiv 1612.01105).

For each bin size b: ``P_b = Up(Conv1x1(AdaptiveAvgPool_b(x)))`` with ``C_in / len(bins)`` channels;
``y = Conv_post(concat[x, P_b1, ..., P_bk])``. Fast-SCNN uses bins (1, 2, 3, 6) and a 1 x 1 post
conv to 128 channels (mmseg's FastSCNN uses a 3 x 3 post conv instead).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.models.utils import resize


class PyramidPooling(BaseModule):
    """Pyramid pooling: pooled context at several bin sizes, concatenated with the input, fused.

    Note: a bin of size 1 on a batch of 1 gives BatchNorm a single value per channel, which
    torch refuses in training mode; train with batch size >= 2 (as PSPNet and mmseg do).

    Args:
        in_channels (int): input channels C_in.
        out_channels (int): output channels of the post conv.
        bins (Sequence[int]): output sizes of the adaptive average pools. Default: (1, 2, 3, 6).
        branch_channels (int, optional): channels of each pooled branch. Default:
            ``in_channels // len(bins)``.
        post_kernel_size (int): kernel of the fusing conv (1 in Fast-SCNN, 3 in mmseg). Default: 1.
        conv_cfg (dict, optional): conv layer config. Default: None.
        norm_cfg (dict, optional): norm layer config. Default: ``dict(type='BN')``.
        act_cfg (dict, optional): activation. Default: ReLU.
        align_corners (bool): ``align_corners`` of the bilinear upsampling. Default: False.
        init_cfg (dict, optional): mmengine init config. Default: None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 bins: Sequence[int] = (1, 2, 3, 6),
                 branch_channels: Optional[int] = None,
                 post_kernel_size: int = 1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if len(bins) == 0 or any(int(b) < 1 for b in bins):
            raise ValueError(f'PyramidPooling bins must be a non-empty list of sizes >= 1, '
                             f'got {bins}.')
        branch_channels = branch_channels or max(in_channels // len(bins), 1)
        self.bins = tuple(int(b) for b in bins)
        self.align_corners = align_corners
        self.branches = nn.ModuleList([
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                ConvModule(
                    in_channels,
                    branch_channels,
                    1,
                    conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg)) for b in self.bins
        ])
        self.post_conv = ConvModule(
            in_channels + branch_channels * len(self.bins),
            out_channels,
            post_kernel_size,
            padding=post_kernel_size // 2,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor): (N, C_in, H, W). Returns: Tensor: (N, out_channels, H, W)."""
        outs = [x]
        exporting = torch.onnx.is_in_onnx_export()
        for b, branch in zip(self.bins, self.branches):
            if exporting:  # ONNX has no adaptive pooling for sizes that are not multiples of b
                pooled = branch[1](adaptive_avg_pool2d_matmul(x, b))
            else:
                pooled = branch(x)
            outs.append(
                resize(pooled, size=x.shape[2:], mode='bilinear', align_corners=self.align_corners))
        return self.post_conv(torch.cat(outs, dim=1))


def _pool_matrix(n: int, bins: int, ref: torch.Tensor) -> torch.Tensor:
    """(bins, n) matrix averaging the cells [floor(i*n/bins), ceil((i+1)*n/bins)) like torch."""
    m = ref.new_zeros(bins, n)
    for i in range(bins):
        start, end = (i * n) // bins, -(-((i + 1) * n) // bins)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool2d_matmul(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` written as two matrix products (ONNX-exportable).

    Args:
        x (Tensor): (N, C, H, W).
        bins (int): output size (bins x bins).

    Returns:
        Tensor: (N, C, bins, bins), equal to torch's adaptive average pooling.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    return _pool_matrix(h, bins, x) @ x @ _pool_matrix(w, bins, x).t()
