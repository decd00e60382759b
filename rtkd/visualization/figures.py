"""Figures for the analysis tools: prediction grids and CWD channel-distribution grids.

Every figure is saved as a PNG whose ``Description`` text chunk holds a JSON summary of its
layout (rows, columns, panels, labels), so scripts and tests can check a picture without
looking at it (``PIL.Image.open(path).text['Description']``).
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _plt():
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: str, summary: dict, dpi: int) -> dict:
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi, metadata={'Description': json.dumps(summary)})
    _plt().close(fig)
    return summary


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Paint a label map with a dataset palette; labels outside it (e.g. 255 = ignore) are black.

    Args:
        label (np.ndarray): (H, W) integer class indices.
        palette (Sequence[Sequence[int]]): one RGB triple per class.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB image.
    """
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    out = np.zeros(label.shape + (3, ), np.uint8)
    valid = (label >= 0) & (label < len(pal))
    out[valid] = pal[label[valid]]
    return out


def image_miou(pred: np.ndarray,
               gt: np.ndarray,
               num_classes: int,
               ignore_index: int = 255) -> float:
    """mIoU of one prediction over the classes present in its ground truth or prediction.

    Args:
        pred (np.ndarray): (H, W) predicted classes.
        gt (np.ndarray): (H, W) true classes; ``ignore_index`` pixels are skipped.
        num_classes (int): number of classes.
        ignore_index (int): label to skip.

    Returns:
        float: mean IoU in percent (nan when nothing is labelled).
    """
    keep = (gt != ignore_index) & (gt < num_classes)
    p, g = pred[keep], gt[keep]
    ious = []
    for c in range(num_classes):
        inter = np.sum((p == c) & (g == c))
        union = np.sum((p == c) | (g == c))
        if union > 0:
            ious.append(inter / union)
    return float(np.mean(ious) * 100) if ious else float('nan')


def prediction_grid(samples: List[Dict],
                    columns: Sequence[str],
                    classes: Sequence[str],
                    palette: Sequence[Sequence[int]],
                    out: str,
                    ignore_index: int = 255,
                    panel_width: float = 2.6,
                    dpi: int = 100) -> dict:
    """Grid of image | ground truth | one prediction per model, one row per image, and a legend.

    Args:
        samples (list[dict]): per image ``name`` (str), ``image`` ((H, W, 3) uint8 RGB),
            ``gt`` ((H, W) int or None) and ``preds`` (dict column name -> (H, W) int).
        columns (Sequence[str]): model columns in display order (keys of ``preds``).
        classes (Sequence[str]): class names (legend).
        palette (Sequence[Sequence[int]]): RGB per class.
        out (str): PNG path.
        ignore_index (int): label drawn black and skipped by the per-image mIoU.
        panel_width (float): inches per panel.
        dpi (int): resolution.

    Returns:
        dict: layout summary (also stored in the PNG): rows, cols, panels, columns, classes,
        per-image mIoU per model.
    """
    if not samples:
        raise ValueError('prediction_grid needs at least one image.')
    plt = _plt()
    has_gt = any(s.get('gt') is not None for s in samples)
    heads = ['image'] + (['ground truth'] if has_gt else []) + list(columns)
    h, w = samples[0]['image'].shape[:2]
    rows, cols = len(samples), len(heads)
    panel_h = panel_width * h / w
    n_legend = len(classes) + 1
    ncol = min(n_legend, 6)
    top, left, gap = 0.35, 0.3, 0.06  # inches: column titles, row names, between panels
    legend_h = 0.25 * -(-n_legend // ncol) + 0.2
    fig_w = left + panel_width * cols + gap * (cols - 1) + 0.05
    fig_h = top + panel_h * rows + gap * (rows - 1) + legend_h
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(fig_w, fig_h))
    fig.subplots_adjust(
        left=left / fig_w,
        right=1 - 0.05 / fig_w,
        top=1 - top / fig_h,
        bottom=legend_h / fig_h,
        wspace=gap / panel_width,
        hspace=gap / panel_h)
    scores: Dict[str, List[float]] = {c: [] for c in columns}
    for r, s in enumerate(samples):
        panels = [s['image']]
        if has_gt:
            panels.append(
                colorize(s['gt'], palette) if s.get('gt') is not None else np.zeros_like(s['image'])
            )
        panels += [colorize(s['preds'][c], palette) for c in columns]
        for c, (ax, img) in enumerate(zip(axes[r], panels)):
            ax.imshow(img, interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heads[c], fontsize=9)
            if c >= cols - len(columns) and s.get('gt') is not None:
                col = heads[c]
                miou = image_miou(s['preds'][col], s['gt'], len(classes), ignore_index)
                scores[col].append(miou)
                ax.text(
                    0.02,
                    0.96,
                    f'mIoU {miou:.1f}',
                    transform=ax.transAxes,
                    fontsize=8,
                    va='top',
                    ha='left',
                    bbox=dict(facecolor='white', alpha=0.75, pad=1.5, lw=0))
        axes[r][0].set_ylabel(s.get('name', str(r)), fontsize=7)
    from matplotlib.patches import Patch
    handles = [
        Patch(facecolor=np.asarray(palette[i]) / 255.0, edgecolor='k', label=str(n))
        for i, n in enumerate(classes)
    ]
    handles.append(Patch(facecolor='black', edgecolor='k', label=f'ignored ({ignore_index})'))
    fig.legend(
        handles=handles,
        loc='lower center',
        ncol=ncol,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0))
    summary = dict(
        kind='predictions',
        rows=rows,
        cols=cols,
        panels=rows * cols,
        columns=heads,
        classes=list(map(str, classes)),
        images=[s.get('name') for s in samples],
        mean_image_miou={
            c: (float(np.nanmean(v)) if v else None)
            for c, v in scores.items()
        })
    return _save(fig, out, summary, dpi)


def _one_image(feat: torch.Tensor) -> torch.Tensor:
    """``feat`` as a floating ``(1, C, H, W)`` map (one image; float64 stays float64)."""
    if feat.dim() == 3:
        feat = feat[None]
    if feat.dim() != 4:
        raise ValueError(f'expected a (C, H, W) feature map, got shape {tuple(feat.shape)}; '
                         'tap a convolutional layer.')
    if feat.shape[0] != 1:
        raise ValueError(f'expected one image, got a batch of {feat.shape[0]}.')
    return feat if feat.dtype in (torch.float32, torch.float64) else feat.float()


def spatial_distributions(feat: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """CWD's per-channel spatial distribution phi(y_c / T) (softmax over the H*W positions),
    computed by the loss's own :func:`~rtkd.distill.losses.channel_wise_kd.cwd_log_distributions`.

    Args:
        feat (torch.Tensor): (1, C, H, W) or (C, H, W) activations.
        tau (float): temperature T (CWD uses 4 on logits).

    Returns:
        torch.Tensor: (C, H, W), each channel summing to 1.
    """
    from rtkd.distill.losses.channel_wise_kd import cwd_log_distributions
    return cwd_log_distributions(_one_image(feat), tau)[0].exp()


def channel_kl(t_feat: torch.Tensor, s_feat: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Per-channel CWD term T^2 * KL(phi(y_t,c) || phi(y_s,c)) for one image, from the loss's own
    :func:`~rtkd.distill.losses.channel_wise_kd.cwd_terms`; their mean is
    ``ChannelWiseKD(tau)(s_feat, t_feat)`` with ``loss_weight=1``.

    Unlike the loss (which needs equal shapes: a ``ResizeConnector`` in a recipe), the student
    map is resized (bilinear) to the teacher's spatial size first when they differ.

    Args:
        t_feat (torch.Tensor): teacher (1, C, H, W).
        s_feat (torch.Tensor): student (1, C, H', W'), same C.
        tau (float): temperature T.

    Returns:
        torch.Tensor: (C,) divergences.
    """
    from rtkd.distill.losses.channel_wise_kd import cwd_terms
    t_feat, s_feat = _one_image(t_feat), _one_image(s_feat)
    if t_feat.shape[1] != s_feat.shape[1]:
        raise ValueError(f'teacher has {t_feat.shape[1]} channels, student {s_feat.shape[1]}; '
                         'KL needs equal counts (tap layers with the same width).')
    if t_feat.shape[-2:] != s_feat.shape[-2:]:
        s_feat = F.interpolate(s_feat, size=t_feat.shape[-2:], mode='bilinear', align_corners=False)
    return cwd_terms(s_feat, t_feat, tau)[0] * tau**2


def channel_grid(t_dist: torch.Tensor,
                 s_dist: torch.Tensor,
                 channels: Sequence[int],
                 out: str,
                 labels: Optional[Sequence[str]] = None,
                 kl: Optional[torch.Tensor] = None,
                 image: Optional[np.ndarray] = None,
                 titles: Sequence[str] = ('teacher', 'student'),
                 suptitle: str = '',
                 shared_scale: bool = False,
                 panel_width: float = 2.8,
                 dpi: int = 100) -> dict:
    """Heat maps of per-channel spatial distributions: one row per channel, teacher | student.

    Values are ``p * H * W`` (1 = uniform over positions, so maps of different sizes compare);
    colours run from black (0) to white at each panel's own peak (``inferno``), or at the row's
    peak with ``shared_scale``. The row label carries the channel (class) name, the channel's
    CWD divergence when given, and both peaks in multiples of the uniform density (how
    concentrated each distribution is). An optional first row shows the input image.

    Args:
        t_dist (torch.Tensor): (C_t, H, W) teacher distributions.
        s_dist (torch.Tensor): (C_s, H', W') student distributions.
        channels (Sequence[int]): channel indices to draw (rows).
        out (str): PNG path.
        labels (Sequence[str], optional): name per channel index (e.g. class names).
        kl (torch.Tensor, optional): (C,) per-channel divergence to print per row.
        image (np.ndarray, optional): (H, W, 3) RGB input drawn in an extra first row.
        titles (Sequence[str]): column titles.
        suptitle (str): figure title.
        shared_scale (bool): one colour scale per row instead of one per panel.
        panel_width (float): inches per panel.
        dpi (int): resolution.

    Returns:
        dict: layout summary (also stored in the PNG).
    """
    plt = _plt()
    channels = list(channels)
    extra = 1 if image is not None else 0
    th, tw = t_dist.shape[-2:]
    panel_h = panel_width * th / tw
    rows = len(channels) + extra
    import textwrap
    title_lines = textwrap.wrap(suptitle, 80) if suptitle else []
    top = 0.35 + 0.15 * len(title_lines)  # inches above the first row: suptitle + col titles
    fig_h = panel_h * rows + top + 0.15
    fig, axes = plt.subplots(rows, 2, squeeze=False, figsize=(panel_width * 2 + 1.7, fig_h))
    fig.subplots_adjust(
        left=1.6 / (panel_width * 2 + 1.7),
        right=0.98,
        bottom=0.05 / fig_h,
        top=1 - top / fig_h,
        wspace=0.04,
        hspace=0.08)
    if image is not None:
        for ax, title in zip(axes[0], titles):
            ax.set_title(title, fontsize=9)
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][0].set_ylabel('input', fontsize=8)
    row_labels = []
    for r, ch in enumerate(channels):
        t = (t_dist[ch] * t_dist[ch].numel()).cpu().numpy()
        s = (s_dist[ch] * s_dist[ch].numel()).cpu().numpy()
        vmax = float(max(t.max(), s.max()))
        for c, (ax, m) in enumerate(zip(axes[r + extra], (t, s))):
            ax.imshow(
                m,
                cmap='inferno',
                vmin=0,
                vmax=vmax if shared_scale else float(m.max()),
                interpolation='bilinear',
                extent=(0, tw, th, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and image is None:
                ax.set_title(titles[c], fontsize=9)
        name = labels[ch] if labels is not None and ch < len(labels) else f'ch {ch}'
        label = (f'{ch}: {name}' + (f'\nKL {float(kl[ch]):.3f}' if kl is not None else '') +
                 f'\npeak T {float(t.max()):.3g}x, S {float(s.max()):.3g}x')
        row_labels.append(label)
        axes[r + extra][0].set_ylabel(label, fontsize=8, rotation=0, ha='right', va='center')
    if title_lines:
        fig.suptitle('\n'.join(title_lines), fontsize=8, y=1 - 0.05 / fig_h, va='top')
    summary = dict(
        kind='channels',
        rows=rows,
        cols=2,
        panels=rows * 2,
        channels=channels,
        row_labels=row_labels,
        teacher_shape=list(t_dist.shape),
        student_shape=list(s_dist.shape),
        kl=[float(kl[c]) for c in channels] if kl is not None else None)
    return _save(fig, out, summary, dpi)
