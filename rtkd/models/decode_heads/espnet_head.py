"""ESPNet class-space decoder (Mehta et al., ECCV 2018, arXiv 1803.06815), following the
official code (sacmehta/ESPNet, ``ESPNet`` class).

With C classes and encoder outputs f1 (1/2), f2 (1/4), f3 (1/8):

* ``a = Deconv2x2(BN(Conv1x1_{->C}(f3)))``                                    (1/4)
* ``b = Deconv2x2(ESP_{2C->C, no residual}(BR(concat[Conv1x1_{->C}(f2), a])))`` -> BR  (1/2)
* ``c = CBR_3x3_{->C}(concat[b, f1])``                                          (1/2)
* ``logits = Deconv2x2(c)``  (``conv_seg``; full resolution)

BR = BN + PReLU, CBR = conv + BN + PReLU, deconvs are 2 x 2 stride-2 transposed convs without
bias. Each decoder output is resized to its skip's size when they differ (inputs whose size is
not a multiple of 8). No dropout (as the official code). The final deconv is ``conv_seg`` so
distillation taps on ``decode_head.conv_seg`` see the logits.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS

from ..layers.esp_module import ESPModule, norm_prelu
from .fast_scnn_head import check_in_channels


@MODELS.register_module()
class RTESPNetHead(BaseDecodeHead):
    """ESPNet decoder working in class space (all decoder layers have ``num_classes`` channels).

    Args:
        in_channels (Sequence[int]): channels of the 1/2, 1/4 and 1/8 encoder outputs.
            Default: (19, 131, 256).
        in_index (Sequence[int]): their indices in the backbone outputs. Default: (0, 1, 2).
        channels (int, optional): must equal ``num_classes`` (class-space decoder); defaults
            to it.
        dropout_ratio (float): dropout before ``conv_seg``. Default: 0 (official code).
        **kwargs: other :class:`BaseDecodeHead` arguments (``num_classes``, ``norm_cfg``,
            ``loss_decode``, ``align_corners``, ...). ``input_transform`` is fixed to
            ``'multiple_select'``.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (19, 131, 256),
                 in_index: Sequence[int] = (0, 1, 2),
                 channels: Optional[int] = None,
                 dropout_ratio: float = 0.0,
                 **kwargs) -> None:
        if 'num_classes' not in kwargs:
            raise ValueError('RTESPNetHead needs num_classes.')
        num_classes = kwargs['num_classes']
        if channels is not None and channels != num_classes:
            raise ValueError(f'RTESPNetHead decodes in class space: channels must equal '
                             f'num_classes ({num_classes}) or be left unset, got {channels}.')
        if len(in_channels) != 3 or len(in_index) != 3:
            raise ValueError(f'RTESPNetHead needs 3 inputs (1/2, 1/4, 1/8), got in_channels='
                             f'{in_channels}, in_index={in_index}.')
        kwargs.setdefault('input_transform', 'multiple_select')
        if kwargs['input_transform'] != 'multiple_select':
            raise ValueError("RTESPNetHead needs input_transform='multiple_select'.")
        super().__init__(
            in_channels=list(in_channels),
            channels=num_classes,
            in_index=list(in_index),
            dropout_ratio=dropout_ratio,
            **kwargs)
        c = num_classes
        c1, c2, c3 = in_channels
        norm_cfg = self.norm_cfg
        if norm_cfg is None:
            raise ValueError('RTESPNetHead needs a norm_cfg (e.g. dict(type="BN")).')
        conv_cfg = self.conv_cfg
        self.cls3 = build_conv_layer(conv_cfg, c3, c, 1, bias=False)
        self.norm3 = build_norm_layer(norm_cfg, c)[1]
        self.up3 = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)
        self.cls2 = build_conv_layer(conv_cfg, c2, c, 1, bias=False)
        self.merge2 = nn.Sequential(
            norm_prelu(2 * c, norm_cfg),
            ESPModule(2 * c, c, residual=False, conv_cfg=conv_cfg, norm_cfg=norm_cfg))
        self.up2 = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)
        self.post2 = norm_prelu(c, norm_cfg)
        self.merge1 = nn.Sequential(
            build_conv_layer(conv_cfg, c + c1, c, 3, padding=1, bias=False),
            *norm_prelu(c, norm_cfg))
        # the last layer: a 2x2 deconv to full resolution, named conv_seg like every mmseg head
        self.conv_seg = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Args: inputs (Sequence[Tensor]): backbone outputs.

        Returns:
            Tensor: (N, num_classes, 2*ceil(H/2), 2*ceil(W/2)) logits (input size for even
            inputs; the segmentor resizes them to the input otherwise).
        """
        f1, f2, f3 = self._transform_inputs(inputs)
        check_in_channels(self, [f1, f2, f3])
        a = self.up3(self.norm3(self.cls3(f3)))
        a = self._match(a, f2)
        b = self.merge2(torch.cat([self.cls2(f2), a], dim=1))
        b = self.post2(self._match(self.up2(b), f1))
        c = self.merge1(torch.cat([b, f1], dim=1))
        return self.cls_seg(c)

    def _match(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Resize ``x`` to the spatial size of ``ref`` if they differ."""
        if x.shape[2:] == ref.shape[2:]:
            return x
        return resize(x, size=ref.shape[2:], mode='bilinear', align_corners=self.align_corners)
