"""Dilated (atrous) convolution with "same" padding (Yu & Koltun, ICLR 2016, arXiv 1511.07122).

``y[p] = sum_k w[k] x[p + d*k]``: a k x k kernel with dilation d covers ``(k-1)d+1`` pixels per side
at the cost of a k x k kernel. Padding ``d(k-1)/2`` keeps the spatial size at stride 1.
"""
from __future__ import annotations

from typing import Optional

from mmcv.cnn import ConvModule


class DilatedConv(ConvModule):
    """:class:`mmcv.cnn.ConvModule` (conv +norm +act) with dilation and size-keeping padding.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): kernel size (odd). Default: 3.
        dilation (int): dilation rate (>= 1). Default: 2.
        stride (int): stride. Default: 1.
        groups (int): conv groups (``in_channels`` for a depthwise dilated conv). Default: 1.
        norm_cfg (dict, optional): norm layer. Default: ``dict(type='BN')``.
        act_cfg (dict, optional): activation. Default: ReLU.
        **kwargs: passed to :class:`mmcv.cnn.ConvModule`.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 dilation: int = 2,
                 stride: int = 1,
                 groups: int = 1,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 **kwargs) -> None:
        if kernel_size % 2 != 1 or dilation < 1:
            raise ValueError(f'DilatedConv needs an odd kernel_size and dilation >= 1, got '
                             f'kernel_size={kernel_size}, dilation={dilation}.')
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=groups,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            **kwargs)
