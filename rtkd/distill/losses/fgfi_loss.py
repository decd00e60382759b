"""Fine-grained feature imitation (FGFI) for detectors (Wang et al., CVPR 2019)."""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.registry import MODELS
from torch import Tensor

from ..connectors import Conv3x3ReLUConnector
from ..det_utils import anchor_imitation_masks, gt_box_masks, gt_boxes_of, is_anchor_generator
from ._utils import check_choice, check_shapes
from .base import BaseDistillLoss

_DEFAULT_SOURCES = ('bbox_head.prior_generator', 'rpn_head.prior_generator')


@MODELS.register_module()
class FGFILoss(BaseDistillLoss):
    r"""Fine-grained feature imitation, "Distilling Object Detectors with Fine-grained Feature
    Imitation" (Tao Wang, Li Yuan, Xiaopeng Zhang, Jiashi Feng, CVPR 2019, arXiv 1906.03609).

    Imitation mask: for each GT box ``g`` of an image, the IoU of ``g`` with every anchor of the
    STUDENT's anchor generator (all ``A`` anchors at every location of every tapped level),
    ``M_g = max IoU``; anchors with ``IoU > psi * M_g`` are kept and the union over boxes and
    anchors gives ``I`` (``N x H_l x W_l`` per level, see
    :func:`rtkd.distill.det_utils.anchor_imitation_masks`). With ``f_adap`` the adaptation layer
    (3x3 conv + ReLU) on the student feature ``s`` and ``t`` the teacher feature:

    .. math::
        L = \frac{1}{2 N_p} \sum_{l} \sum_{n,c,h,w} I_{l,n,h,w}
            \big(f_{adap}(s_l)_{n,c,h,w} - t_{l,n,c,h,w}\big)^2, \quad
        N_p = \sum_{l,n,h,w} I_{l,n,h,w}

    (the official code divides by ``max(1, 2 * mask.sum())``; we do the same, so an image batch
    without boxes gives 0). ``M_g`` is taken over all tapped levels together (the paper has a
    single feature map; on an FPN this keeps imitation on the levels whose anchors actually match
    the box). With a single-level tap (``level=i``) the max is over that level only.

    Inputs: ``student``/``teacher`` are one feature map (``N x C x H x W``, with ``level`` set) or
    the tuple of all FPN levels (tap ``'student:neck'`` without an index); the GT boxes come from
    ``data_samples`` (supplied by the distiller). The adaptation layer is either this loss's own
    ``Conv3x3ReLUConnector`` (``in_channels``/``out_channels`` given; shared by all levels, like
    the detection head it feeds) or a distiller connector on the student tap (then leave
    ``in_channels=None``).

    Official training details the recipes carry (``twangnh/Distilling-Object-Detectors``,
    ``trainval_net_sup.py``): the adaptation conv starts from a truncated normal with std 1e-4
    (``adapter_init_std``, so the adapter's output starts near ``ReLU(bias)`` and the imitation
    gradient, not a random projection, shapes it), and the first 400 iterations train without
    imitation (``--ws 400`` at batch 1; in a recipe: ``schedule=dict(start_iter=400)`` on the
    loss entry). The official code multiplies the loss by 0 during that warm-up; the distiller
    skips it, so the adapter gets neither gradient nor weight decay in those iterations.

    Anchor-free detectors (point prior generators) have no anchors: ``mask='auto'`` then falls back
    to GT-box regions (a location is imitated when its prior point lies inside a GT box) and logs
    it once; ``mask='anchor'`` raises instead.

    Args:
        psi (float): threshold factor ``psi`` in (0, 1]. Paper: 0.5.
        in_channels (int | None): student channels for the built-in adaptation layer
            (None: no built-in layer).
        out_channels (int | None): teacher channels (default ``in_channels``).
        adapter_init_std (float | None): std of the built-in adaptation conv's truncated-normal
            initialisation. Official: 1e-4 (the default); None: PyTorch's default init.
        level (int | None): generator level of a single-tensor tap (e.g. 0 for ``neck[0]``).
        prior_generator (dict | None): explicit prior generator config (mmdet ``TASK_UTILS``,
            e.g. ``dict(type='AnchorGenerator', ...)``); default: read from the student.
        prior_source (str | None): dotted attribute path of the student's generator
            (default: ``bbox_head.prior_generator``, then ``rpn_head.prior_generator``).
        mask (str): ``'auto'`` (anchors if the generator makes anchors, else GT boxes),
            ``'anchor'`` (anchor-based only) or ``'gt_box'``.
        loss_weight (float): multiplier of the returned loss. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ('data_samples', )

    def __init__(self,
                 psi: float = 0.5,
                 in_channels: Optional[int] = None,
                 out_channels: Optional[int] = None,
                 adapter_init_std: Optional[float] = 1e-4,
                 level: Optional[int] = None,
                 prior_generator: Optional[dict] = None,
                 prior_source: Optional[str] = None,
                 mask: str = 'auto',
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        if not (isinstance(psi, (int, float)) and 0 < psi <= 1):
            raise ValueError(f'FGFILoss: psi must be in (0, 1], got {psi!r}.')
        self.psi = float(psi)
        self.level = level
        self.mask_mode = check_choice('FGFILoss', 'mask', mask, ('auto', 'anchor', 'gt_box'))
        self.prior_source = prior_source
        self.adapter = None
        if in_channels is not None:
            self.adapter = Conv3x3ReLUConnector(
                in_channels, out_channels or in_channels, init_std=adapter_init_std)
        elif out_channels is not None:
            raise ValueError('FGFILoss: out_channels given without in_channels; set both (or '
                             'neither, and put a Conv3x3ReLUConnector on the student tap).')
        self._generator = None
        if prior_generator is not None:
            from mmdet.registry import TASK_UTILS

            # build in mmdet's scope whatever default scope a Runner left behind
            self._generator = TASK_UTILS.build(dict(prior_generator, _scope_='mmdet'))
            self._check_generator()

    # -----------------------------------------------------------------------------------
    def setup(self, distiller) -> None:
        """Take the prior generator from the student (unless one was configured)."""
        if self._generator is not None:
            return
        sources = [self.prior_source] if self.prior_source else list(_DEFAULT_SOURCES)
        for src in sources:
            obj = distiller.student
            for part in src.split('.'):
                obj = getattr(obj, part, None)
                if obj is None:
                    break
            if obj is not None:
                self._generator = obj
                break
        if self._generator is None:
            raise ValueError(f'FGFILoss found no prior generator on the student at '
                             f'{" or ".join(sources)}; set prior_source=<dotted path> or '
                             f"prior_generator=dict(type='AnchorGenerator', ...).")
        self._check_generator()

    def _check_generator(self) -> None:
        anchors = is_anchor_generator(self._generator)
        if self.mask_mode == 'anchor' and not anchors:
            raise ValueError(f'FGFILoss(mask="anchor") needs an anchor-based student but its prior '
                             f'generator is {type(self._generator).__name__}; use mask="gt_box" '
                             f'(GT-box regions) for anchor-free detectors.')
        self._use_anchors = anchors and self.mask_mode != 'gt_box'
        if not anchors and self.mask_mode == 'auto':
            print_log(
                f'FGFILoss: {type(self._generator).__name__} makes no anchors; imitating '
                f'GT-box regions instead (mask="gt_box").',
                logger='current')

    def masks(self, featmap_sizes: Sequence[tuple], levels: Sequence[int], data_samples,
              device: torch.device) -> List[Tensor]:
        """Imitation masks (``N x H x W`` bool per level) for the given feature maps.

        Args:
            featmap_sizes (Sequence[tuple]): ``(H, W)`` per level.
            levels (Sequence[int]): generator level index per feature map.
            data_samples (list[DetDataSample]): batch samples with GT boxes.
            device (torch.device): device of the masks.

        Returns:
            list[Tensor]: one bool mask per level.
        """
        if self._generator is None:
            raise RuntimeError('FGFILoss has no prior generator: use it inside a Distiller (setup '
                               'reads the student) or pass prior_generator=dict(...).')
        boxes = gt_boxes_of(data_samples)
        if self._use_anchors:
            return anchor_imitation_masks(
                self._generator, featmap_sizes, boxes, self.psi, levels=levels, device=device)
        return gt_box_masks(self._generator, featmap_sizes, boxes, levels=levels, device=device)

    def forward(self,
                student: Union[Tensor, Sequence[Tensor]],
                teacher: Union[Tensor, Sequence[Tensor]],
                data_samples=None,
                **extra) -> Tensor:
        """Masked, normalised imitation loss.

        Args:
            student (Tensor | Sequence[Tensor]): student feature map(s), ``N x C_s x H x W``.
            teacher (Tensor | Sequence[Tensor]): teacher feature map(s), ``N x C_t x H x W``
                (detached here).
            data_samples (list[DetDataSample]): the batch's samples (GT boxes, from the
                distiller).
            **extra: ignored.

        Returns:
            Tensor: scalar loss, already multiplied by ``loss_weight``.
        """
        if data_samples is None:
            raise ValueError('FGFILoss needs data_samples (the distiller passes them).')
        single = torch.is_tensor(student)
        s_list = [student] if single else list(student)
        t_list = [teacher] if torch.is_tensor(teacher) else list(teacher)
        if len(s_list) != len(t_list):
            raise ValueError(f'FGFILoss: {len(s_list)} student levels but {len(t_list)} teacher '
                             f'levels; tap the same FPN outputs on both sides.')
        if single:
            if self.level is None:
                if self._generator is not None and self._generator.num_levels > 1:
                    raise ValueError('FGFILoss got one feature map but the prior generator has '
                                     f'{self._generator.num_levels} levels; set level=<index> '
                                     "or tap all levels ('student:neck').")
                levels = [0]
            else:
                levels = [self.level]
        else:
            levels = list(range(len(s_list)))
        if self.adapter is not None:
            s_list = [self.adapter(s) for s in s_list]
        for s, t in zip(s_list, t_list):
            check_shapes('FGFILoss', s, t, min_dim=4, max_dim=4)
        sizes = [tuple(t.shape[2:]) for t in t_list]
        masks = self.masks(sizes, levels, data_samples, s_list[0].device)
        total = s_list[0].new_zeros(())
        n_masked = 0.0
        for s, t, m in zip(s_list, t_list, masks):
            m = m.to(s.dtype)[:, None]
            total = total + ((s - t.detach()).pow(2) * m).sum()
            n_masked += float(m.sum())
        return total / max(1.0, 2.0 * n_masked) * self.loss_weight
