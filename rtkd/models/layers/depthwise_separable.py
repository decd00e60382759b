"""Depthwise-separable convolution (MobileNet, Howard et al. 2017, arXiv 1704.04861).

A k x k depthwise convolution (``groups = in_channels``) followed by a 1 x 1 pointwise convolution:
``y = PW(DW(x))``. Parameters: ``k*k*C_in + C_in*C_out`` instead of ``k*k*C_in*C_out``.
Fast-SCNN and ContextNet follow MobileNetV2 and put no non-linearity between the depthwise and the
pointwise step; that is the default here (``dw_act_cfg=None``).
"""
from __future__ import annotations

from typing import Optional

from mmcv.cnn import DepthwiseSeparableConvModule


class DSConv(DepthwiseSeparableConvModule):
    """Depthwise-separable conv: DW k x k (+BN) -> PW 1 x 1 (+BN +act).

    Thin wrapper over :class:`mmcv.cnn.DepthwiseSeparableConvModule` that pads to keep the size
    ("same" padding for odd kernels, scaled by ``dilation``) and defaults to the MobileNetV2 layout
    (BN after both convolutions, activation only after the pointwise one).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): depthwise kernel size (odd). Default: 3.
        stride (int): depthwise stride. Default: 1.
        dilation (int): depthwise dilation. Default: 1.
        norm_cfg (dict, optional): norm layer after both convs. Default: ``dict(type='BN')``.
        act_cfg (dict, optional): activation after the pointwise conv. Default: ReLU.
        dw_act_cfg (dict, optional): activation after the depthwise conv. Default: None.
        **kwargs: passed to :class:`mmcv.cnn.DepthwiseSeparableConvModule`.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 dilation: int = 1,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 dw_act_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f'DSConv needs an odd kernel_size to keep the spatial size, got '
                             f'{kernel_size}; use 1, 3, 5, ...')
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            dw_act_cfg=dw_act_cfg,
            **kwargs)
