"""FANet classifier head (Hu et al., "Real-time Semantic Segmentation with Fast Attention",
RA-L 2021).

Concatenates the fused 1/8 feature ``s_1`` with the upsampled 1/32 feature ``s_3`` (2 x 128
channels), applies conv3x3 (256 -> 256) + BN + act and a 1x1 classifier: output stride 8.
The two auxiliary classifiers of the paper's training (on ``s_3`` and ``s_4``, loss weight 0.5
each) are plain mmseg ``FCNHead``s in the configs (conv3x3 128 -> 64, 1x1 -> classes).
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS


@MODELS.register_module()
class RTFANetHead(BaseDecodeHead):
    """Concat (high-res, upsampled low-res) -> conv3x3 -> 1x1 classifier.

    Args:
        in_channels (Sequence[int]): widths of the selected inputs, high resolution first
            (default ``(128, 128)``: ``s_1`` and ``s_3`` of
            :class:`rtkd.models.backbones.RTFANet`).
        channels (int): width of the 3x3 conv (256 in the paper).
        in_index (Sequence[int]): which backbone outputs to use. Default: ``(0, 1)``.
        **kwargs: forwarded to ``BaseDecodeHead`` (``num_classes``, ``norm_cfg``, ``act_cfg``,
            ``loss_decode``, ``sampler``, ``align_corners``, ``dropout_ratio`` ...).
            ``input_transform`` is always ``'multiple_select'``.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (128, 128),
                 channels: int = 256,
                 in_index: Sequence[int] = (0, 1),
                 **kwargs) -> None:
        kwargs['input_transform'] = 'multiple_select'
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(list(in_channels), channels, in_index=list(in_index), **kwargs)
        self.fuse = ConvModule(
            sum(self.in_channels),
            channels,
            3,
            padding=1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """Fuse the selected features at the first one's resolution and classify.

        Args:
            inputs (list[Tensor]): backbone outputs.

        Returns:
            Tensor: logits at the resolution of the first selected input.
        """
        feats = self._transform_inputs(inputs)
        size = feats[0].shape[2:]
        feats = [feats[0]] + [
            resize(f, size=size, mode='bilinear', align_corners=self.align_corners)
            for f in feats[1:]
        ]
        return self.cls_seg(self.fuse(torch.cat(feats, dim=1)))
