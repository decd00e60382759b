"""Template add-on: a decode head built from depthwise-separable convolutions."""
import torch.nn as nn
from mmcv.cnn import DepthwiseSeparableConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS


@MODELS.register_module()
class DSConvFCNHead(BaseDecodeHead):
    """FCN head whose convolutions are depthwise-separable (template for projects).

    Args:
        num_convs (int): number of 3x3 depthwise-separable conv blocks. Default: 2.
        **kwargs: passed to :class:`mmseg.models.decode_heads.decode_head.BaseDecodeHead`.
    """

    def __init__(self, num_convs: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        layers = []
        for i in range(num_convs):
            layers.append(
                DepthwiseSeparableConvModule(
                    self.in_channels if i == 0 else self.channels,
                    self.channels,
                    3,
                    padding=1,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg))
        self.convs = nn.Sequential(*layers)

    def forward(self, inputs):
        """Args:
            inputs (list[Tensor]): backbone features.

        Returns:
            Tensor: class logits at the selected feature's resolution.
        """
        return self.cls_seg(self.convs(self._transform_inputs(inputs)))
