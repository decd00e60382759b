"""Fast-SCNN classifier head (Poudel et al., BMVC 2019, arXiv 1902.04502).

``logits = Conv1x1(Dropout(DSConv(DSConv(x))))``: two 3 x 3 depthwise-separable convs (128 ch,
BN, ReLU) and a 1 x 1 conv to the classes; dropout only before the last layer (paper, Sec. 4.1).
Trained with softmax cross-entropy. ContextNet (BMVC 2018) uses the same classifier.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

from ..layers.depthwise_separable import DSConv


def check_in_channels(head: BaseDecodeHead, x: Union[torch.Tensor, Sequence[torch.Tensor]]) -> None:
    """Fail with a one-sentence fix when backbone outputs and ``head.in_channels`` disagree.

    Args:
        head (BaseDecodeHead): the head (uses ``in_channels`` and ``in_index``).
        x (Tensor or Sequence[Tensor]): the selected inputs (after ``_transform_inputs``).
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return  # shapes are fixed while tracing; keep the exported graph free of checks
    feats = [x] if isinstance(x, torch.Tensor) else list(x)
    expected = head.in_channels if isinstance(head.in_channels, (list, tuple)) \
        else [head.in_channels]
    got = [int(f.shape[1]) for f in feats]
    if got != list(expected):
        raise ValueError(
            f'{type(head).__name__}: in_channels={head.in_channels} does not match the backbone '
            f'outputs at in_index={head.in_index}, which have {got if len(got) > 1 else got[0]} '
            f'channels; set decode_head.in_channels (or in_index) accordingly.')


@MODELS.register_module()
class RTFastSCNNHead(BaseDecodeHead):
    """Fast-SCNN / ContextNet classifier: ``num_convs`` DSConvs, dropout, 1 x 1 conv.

    Args:
        num_convs (int): number of 3 x 3 depthwise-separable convs before the classifier
            (2 in the paper; 0 gives a plain 1 x 1 classifier). Default: 2.
        kernel_size (int): depthwise kernel size. Default: 3.
        **kwargs: :class:`mmseg.models.decode_heads.decode_head.BaseDecodeHead` arguments
            (``in_channels``, ``channels``, ``num_classes``, ``in_index``, ``dropout_ratio``,
            ``norm_cfg``, ``act_cfg``, ``loss_decode``, ``align_corners``, ...).
    """

    def __init__(self, num_convs: int = 2, kernel_size: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.input_transform is not None:
            raise ValueError('RTFastSCNNHead takes a single feature map; leave input_transform '
                             'unset and pick the map with in_index.')
        if num_convs == 0 and self.in_channels != self.channels:
            raise ValueError(f'RTFastSCNNHead with num_convs=0 needs channels == in_channels '
                             f'({self.in_channels}), got channels={self.channels}.')
        convs: List[nn.Module] = []
        for i in range(num_convs):
            convs.append(
                DSConv(
                    self.in_channels if i == 0 else self.channels,
                    self.channels,
                    kernel_size,
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg))
        self.convs = nn.Sequential(*convs)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Args: inputs (Sequence[Tensor]): backbone outputs.

        Returns:
            Tensor: (N, num_classes, h, w) logits at the resolution of the selected input.
        """
        x = self._transform_inputs(inputs)
        check_in_channels(self, x)
        return self.cls_seg(self.convs(x))
