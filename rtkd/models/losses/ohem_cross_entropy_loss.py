"""Online hard example mining cross-entropy, averaged over the kept pixels (as BiSeNet / FANet).

Wu, Shen & van den Hengel, "High-performance Semantic Segmentation Using Very Deep Fully
Convolutional Networks" (arXiv 1605.03239) select the hard pixels; the form used here is the
``OhemCELoss`` of the BiSeNet code (github.com/CoinCheung/BiSeNet) that FANet (Hu et al., RA-L
2021, arXiv 2007.03815) trains with (``OhemCELoss2D`` in github.com/feinanshan/FANet,
``Train/ptsemseg/loss/loss.py``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class OhemCrossEntropyLoss(nn.Module):
    r"""Cross-entropy over the hard pixels only, averaged over the pixels it keeps.

    With :math:`\ell_i = -\log \mathrm{softmax}(z_i)_{y_i}` the cross-entropy of every
    non-ignored pixel :math:`i` of the batch (:math:`V` pixels), the loss threshold
    :math:`\tau = -\log(\text{thresh})` and :math:`n = \min(\text{min\_kept} \cdot N, V)` for a
    batch of :math:`N` images, the kept set :math:`K` is

    * every pixel with :math:`\ell_i > \tau` (prediction probability of the true class below
      ``thresh``) when there are at least :math:`n` of them,
    * otherwise the :math:`n` pixels with the largest :math:`\ell_i`,

    and

    .. math::
        L = \text{loss\_weight} \cdot \frac{1}{|K|} \sum_{i \in K} \ell_i .

    This is the official FANet / BiSeNet ``OhemCELoss`` (``n_min`` = images per GPU x crop area
    / 16 there, i.e. ``min_kept = crop_h * crop_w // 16`` per image here; ``thresh=0.7``). Its
    ``if loss[n_min] > thresh: keep loss > thresh else keep loss[:n_min]`` is the rule above.
    Two corner cases differ: the official code sorts the ignored pixels (loss 0) together with
    the others, so when a batch has fewer than ``n_min`` valid pixels it divides their sum by
    ``n_min`` (here: by the number of valid pixels); a batch without valid pixels gives 0 here
    (the official code indexes out of range when the batch has at most ``n_min`` pixels).

    **Difference from mmseg's** ``OHEMPixelSampler`` **+** ``CrossEntropyLoss``: the sampler
    keeps the same pixels (``p < thresh``, at least ``min_kept`` per image) but the loss then
    divides their summed cross-entropy by all pixels (``avg_non_ignore=False``) or by all valid
    pixels (``avg_non_ignore=True``), i.e. it equals this loss times ``|K| / V`` (or
    ``|K| / (N H W)``): the gradient scale then varies with the fraction of hard pixels. Use this
    loss as ``loss_decode`` **without** a ``sampler``. mmseg 1.2.2's own ``OhemCrossEntropy``
    (PIDNet) cannot be a decode head's ``loss_decode`` (its ``forward`` takes no ``weight`` /
    ``ignore_index``) and keeps pixels by probability rank rather than this rule.

    Args:
        thresh (float, optional): probability threshold in (0, 1]; a pixel is hard when the
            softmax probability of its label is below it (its loss above ``-log(thresh)``).
            ``None`` keeps exactly the ``min_kept`` per image hardest pixels. Default: 0.7.
        min_kept (int): minimum number of kept pixels *per image* (multiplied by the batch size,
            like mmseg's sampler). Default: 100000.
        ignore_index (int): label ignored in the loss (used when the caller passes none; an
            mmseg decode head passes its own ``ignore_index``). Default: 255.
        loss_weight (float): multiplier of the loss. Default: 1.0.
        loss_name (str): key of the loss in the head's loss dict; ``'loss_ce'`` keeps the log
            keys of a plain cross-entropy (``decode.loss_ce``). Default: ``'loss_ce'``.
    """

    def __init__(self,
                 thresh: Optional[float] = 0.7,
                 min_kept: int = 100000,
                 ignore_index: int = 255,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_ce') -> None:
        super().__init__()
        name = type(self).__name__
        if thresh is not None and not 0.0 < float(thresh) <= 1.0:
            raise ValueError(f'{name}: thresh is a probability in (0, 1] (the loss threshold is '
                             f'-log(thresh)), got {thresh}.')
        if int(min_kept) != min_kept or min_kept < 1:
            raise ValueError(f'{name}: min_kept must be a positive integer (pixels per image), '
                             f'got {min_kept}.')
        self.thresh = None if thresh is None else float(thresh)
        self.loss_thresh = None if thresh is None else -math.log(float(thresh))
        self.min_kept = int(min_kept)
        self.ignore_index = int(ignore_index)
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    def kept_mask(self, pixel_loss: Tensor, valid: Tensor) -> Tensor:
        """Select the kept pixels.

        Args:
            pixel_loss (Tensor): per-pixel cross-entropy, ``N x H x W`` (any values at ignored
                pixels).
            valid (Tensor): bool mask of the non-ignored pixels, same shape.

        Returns:
            Tensor: bool mask of the kept pixels, same shape (a subset of ``valid``).
        """
        with torch.no_grad():
            flat = pixel_loss.detach().flatten()
            vflat = valid.flatten()
            num_valid = int(vflat.sum())
            n_min = min(self.min_kept * pixel_loss.shape[0], num_valid)
            if self.loss_thresh is not None:
                hard = vflat & (flat > self.loss_thresh)
                if int(hard.sum()) >= n_min:
                    return hard.view_as(valid)
            keep = torch.zeros_like(vflat)
            if n_min > 0:
                idx = flat.masked_fill(~vflat, float('-inf')).topk(n_min, sorted=False).indices
                keep[idx] = True
            return keep.view_as(valid)

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                ignore_index: Optional[int] = None,
                **kwargs) -> Tensor:
        """Compute the loss.

        Args:
            cls_score (Tensor): logits, ``N x C x H x W``.
            label (Tensor): labels, ``N x H x W`` (long).
            weight (Tensor, optional): must be ``None``: this loss selects its pixels itself
                (remove the head's ``sampler``).
            avg_factor (float, optional): must be ``None`` (the loss is a mean over kept pixels).
            reduction_override (str, optional): ``'mean'`` (default), ``'sum'`` (sum over the
                kept pixels) or ``'none'`` (``N x H x W`` map, 0 where a pixel is not kept).
            ignore_index (int, optional): overrides the configured ``ignore_index``.
            **kwargs: ignored (mmseg passes nothing else today).

        Returns:
            Tensor: the loss times ``loss_weight`` (scalar unless ``'none'``).
        """
        name = type(self).__name__
        if weight is not None:
            raise ValueError(f'{name} selects the hard pixels itself: remove the decode head\'s '
                             '`sampler` (a pixel weight was passed).')
        if avg_factor is not None:
            raise ValueError(f'{name} averages over the kept pixels; avg_factor is not supported.')
        reduction = reduction_override or 'mean'
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', "
                             f'got {reduction!r}.')
        ignore = self.ignore_index if ignore_index is None else int(ignore_index)
        pixel_loss = F.cross_entropy(cls_score, label, ignore_index=ignore, reduction='none')
        keep = self.kept_mask(pixel_loss, label != ignore)
        kept_loss = pixel_loss * keep
        if reduction == 'none':
            return self.loss_weight * kept_loss
        total = kept_loss.sum()
        if reduction == 'mean':
            total = total / keep.sum().clamp(min=1)
        return self.loss_weight * total

    @property
    def loss_name(self) -> str:
        """Name of the loss item (mmseg sums the items whose name starts with ``loss_``)."""
        return self._loss_name
