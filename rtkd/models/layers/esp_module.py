"""ESP module: efficient spatial pyramid of dilated convolutions (ESPNet, Mehta et al.,
ECCV 2018, arXiv 1803.06815).

Reduce: ``r = Conv_1x1(x)`` to ``N/K`` channels (a 3 x 3 stride-2 conv in the down-sampling
variant). Split-transform: K parallel 3 x 3 convs of ``r`` with dilations ``d_1..d_K`` (1, 2, 4, 8,
16). Hierarchical feature fusion (HFF) removes gridding artefacts by cumulative sums,
``s_1 = o_1``, ``s_k = s_{k-1} + o_k`` for k >= 2 (the d=1 branch is left out of the sums, as in
the official code), then ``y = PReLU(BN(concat[o_1, s_2, ..., s_K] (+ x)))``; the residual is used
when the shapes allow it. The first branch gets the remainder channels
``N - (K-1) * floor(N/K)`` so the concatenation has exactly N channels.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule


def norm_prelu(channels: int, norm_cfg: Optional[dict]) -> nn.Sequential:
    """BN + per-channel PReLU, ESPNet's post-activation ("BR" in the official code).

    Args:
        channels (int): channels.
        norm_cfg (dict, optional): norm layer config (None: PReLU only).

    Returns:
        nn.Sequential: the layers.
    """
    layers = []
    if norm_cfg is not None:
        layers.append(build_norm_layer(norm_cfg, channels)[1])
    layers.append(nn.PReLU(channels))
    return nn.Sequential(*layers)


class ESPModule(BaseModule):
    """ESP module with hierarchical feature fusion (reduce -> split/dilate -> HFF -> merge).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels N (>= number of dilations).
        stride (int): 1, or 2 for the down-sampling variant (3 x 3 stride-2 reduce conv, no
            residual). Default: 1.
        dilations (Sequence[int]): dilation of each parallel 3 x 3 conv. Default: (1, 2, 4, 8, 16).
        residual (bool, optional): add the input before BN/PReLU. Default (None): when
            ``stride == 1`` and ``in_channels == out_channels``.
        hff (bool): hierarchical feature fusion (False concatenates the raw branches, the
            gridding-prone ablation of the paper). Default: True.
        conv_cfg (dict, optional): conv layer config. Default: None.
        norm_cfg (dict, optional): norm after the merge. Default: ``dict(type='BN')``.
        init_cfg (dict, optional): mmengine init config. Default: None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 dilations: Sequence[int] = (1, 2, 4, 8, 16),
                 residual: Optional[bool] = None,
                 hff: bool = True,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        k = len(dilations)
        if k < 1 or out_channels < k:
            raise ValueError(f'ESPModule needs out_channels ({out_channels}) >= number of '
                             f'dilations ({k}) and at least one dilation.')
        if stride not in (1, 2):
            raise ValueError(f'ESPModule stride must be 1 or 2, got {stride}.')
        can_add = stride == 1 and in_channels == out_channels
        if residual is None:
            residual = can_add
        elif residual and not can_add:
            raise ValueError(f'ESPModule residual=True needs stride 1 and in_channels == '
                             f'out_channels, got stride={stride}, {in_channels}->{out_channels}; '
                             f'set residual=False.')
        self.residual = residual
        self.hff = hff
        n = out_channels // k
        n1 = out_channels - (k - 1) * n
        ksize = 3 if stride == 2 else 1
        self.reduce = build_conv_layer(
            conv_cfg, in_channels, n, ksize, stride=stride, padding=ksize // 2, bias=False)
        self.branches = nn.ModuleList([
            build_conv_layer(
                conv_cfg, n, n1 if i == 0 else n, 3, padding=d, dilation=d, bias=False)
            for i, d in enumerate(dilations)
        ])
        self.post = norm_prelu(out_channels, norm_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor): (N, C_in, H, W). Returns: Tensor: (N, C_out, ceil(H/s), ceil(W/s))."""
        r = self.reduce(x)
        outs = [branch(r) for branch in self.branches]
        if self.hff:
            for i in range(2, len(outs)):
                outs[i] = outs[i] + outs[i - 1]
        y = torch.cat(outs, dim=1)
        if self.residual:
            y = y + x
        return self.post(y)
