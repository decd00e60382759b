"""Fast attention (Hu et al., "Real-time Semantic Segmentation with Fast Attention", RA-L 2021).

Self-attention over the ``n = H * W`` pixels of a feature map costs ``O(n^2 c)`` when computed as
``softmax(Q K^T) V``. Fast attention replaces the softmax by cosine similarity (Q and K are
L2-normalised per pixel) so that matrix products can be re-associated::

    y = 1/n * (Q_hat K_hat^T) V  =  1/n * Q_hat (K_hat^T V)          (linear in n)

with ``Q_hat, K_hat`` of shape ``n x c'`` (c' = 32) and ``V`` of shape ``n x c``.
The result is projected by a 1x1 conv (+ BN + activation) and added back to the input::

    out = x + act(BN(W_y * y))
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule


class FastAttention(BaseModule):
    """Fast spatial attention block with a residual connection (FANet, RA-L 2021).

    ``Q = BN(conv1x1(x))`` and ``K = BN(conv1x1(x))`` map the input to ``qk_channels`` (32 in the
    paper), ``V = act(BN(conv1x1(x)))`` keeps the input width. Q and K are L2-normalised over
    channels at every pixel, then ``y = Q (K^T V) / n`` (``n`` = number of pixels; the paper's
    scaling, which makes the output independent of the image size) is computed in ``O(n)``; finally
    ``out = x + act(BN(conv1x1(y)))``.

    Args:
        in_channels (int): channels of the input (and of the output, because of the residual).
        qk_channels (int): channels of the query/key projections. Default: 32.
        scale_by_pixels (bool): divide by ``n = H * W`` as in the paper. The official code omits
            the factor (its following BN absorbs most of it, but not at test sizes different from
            the training crop). Default: True.
        conv_cfg (dict, optional): conv layer config. Default: None (``nn.Conv2d``).
        norm_cfg (dict): norm layer config. Default: ``dict(type='BN')``.
        act_cfg (dict): activation of the value and output projections. Default: ReLU
            (the official code uses LeakyReLU with slope 0.01).
        init_cfg (dict or list[dict], optional): mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 qk_channels: int = 32,
                 scale_by_pixels: bool = True,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels <= 0 or qk_channels <= 0:
            raise ValueError(f'FastAttention needs positive in_channels and qk_channels, got '
                             f'{in_channels} and {qk_channels}.')
        self.in_channels = in_channels
        self.qk_channels = qk_channels
        self.scale_by_pixels = scale_by_pixels
        common = dict(kernel_size=1, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.query = ConvModule(in_channels, qk_channels, act_cfg=None, **common)
        self.key = ConvModule(in_channels, qk_channels, act_cfg=None, **common)
        self.value = ConvModule(in_channels, in_channels, act_cfg=act_cfg, **common)
        self.out_proj = ConvModule(in_channels, in_channels, act_cfg=act_cfg, **common)

    @staticmethod
    def attend(q: torch.Tensor,
               k: torch.Tensor,
               v: torch.Tensor,
               scale_by_pixels: bool = True) -> torch.Tensor:
        """Linear-cost cosine attention ``Q_hat (K_hat^T V) [/ n]`` on ``N x C x H x W`` maps.

        Args:
            q (Tensor): queries, ``N x c' x H x W`` (normalised here, per pixel).
            k (Tensor): keys, ``N x c' x H x W`` (normalised here, per pixel).
            v (Tensor): values, ``N x C x H x W``.
            scale_by_pixels (bool): divide by ``n = H * W``.

        Returns:
            Tensor: attended values, ``N x C x H x W``.
        """
        n_batch, channels, height, width = v.shape
        n = height * width
        q = F.normalize(q.flatten(2), p=2, dim=1)  # N x c' x n
        k = F.normalize(k.flatten(2), p=2, dim=1)  # N x c' x n
        v = v.flatten(2)  # N x C x n
        context = torch.bmm(k, v.transpose(1, 2))  # N x c' x C   (K^T V)
        y = torch.bmm(context.transpose(1, 2), q)  # N x C x n    (Q (K^T V))^T
        if scale_by_pixels:
            y = y / n
        return y.reshape(n_batch, channels, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply fast attention and the residual connection.

        Args:
            x (Tensor): input features, ``N x in_channels x H x W``.

        Returns:
            Tensor: ``N x in_channels x H x W``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'FastAttention expects an N x {self.in_channels} x H x W tensor, got '
                             f'shape {tuple(x.shape)}; set in_channels to the input width.')
        y = self.attend(self.query(x), self.key(x), self.value(x), self.scale_by_pixels)
        return x + self.out_proj(y)
