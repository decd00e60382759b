"""Cross-image relational distillation, CIRKD (Yang et al., CVPR 2022)."""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.registry import MODELS
from torch import Tensor

from .. import memory_checks  # noqa: F401  (registers MemoryBankCheckHook)
from ._utils import check_positive, check_shapes
from .base import BaseDistillLoss


def stack_gt_labels(loss_name: str, data_samples: Optional[Sequence], size: tuple) -> Tensor:
    """The batch's ground-truth label maps, nearest-resized to a feature map's size.

    Args:
        loss_name (str): class name of the calling loss (used in the message).
        data_samples (Sequence[SegDataSample] | None): the batch's data samples (``gt_sem_seg``).
        size (tuple): target ``(h, w)``.

    Returns:
        Tensor: ``N x h x w`` long labels (nearest interpolation, as the official CIRKD code).

    Raises:
        ValueError: when the data samples carry no ``gt_sem_seg``.
    """
    if not data_samples or not all(hasattr(d, 'gt_sem_seg') for d in data_samples):
        raise ValueError(f'{loss_name} needs the ground truth: pass the mmseg data samples (with '
                         'gt_sem_seg) as data_samples, i.e. run it inside the Distiller on a '
                         'segmentation batch.')
    labels = torch.stack(
        [d.gt_sem_seg.data.reshape(d.gt_sem_seg.data.shape[-2:]) for d in data_samples])
    labels = F.interpolate(labels[:, None].float(), size=tuple(size), mode='nearest')
    return labels[:, 0].long()


@MODELS.register_module()
class CIRKDLoss(BaseDistillLoss):
    r"""Cross-image relational knowledge distillation, "Cross-Image Relational Knowledge
    Distillation for Semantic Segmentation" (Yang, Zhou, An, Jiang, Xu, Zhang, CVPR 2022,
    arXiv 2204.06986; official code github.com/winycg/CIRKD, ``train_cirkd.py``,
    ``losses/cirkd_mini_batch.py``, ``losses/cirkd_memory.py``).

    Three relational terms on pixel embeddings (the features entering the classifier), each
    with its own weight (0 switches a term off):

    * **mini-batch pixel-to-pixel** (``minibatch_weight``, official 1.0): for every ordered pair
      of images ``(i, j)`` of the batch, with L2-normalised embeddings ``f``,
      ``S_ij = f_i^T f_j`` (``HW x HW``) on both sides and

      .. math::
          L_{mb} = \frac{1}{B^2} \sum_{i,j} \frac{1}{HW} \sum_{rows\ r}
              \mathrm{KL}\big(\mathrm{softmax}(S^t_{ij,r} / \tau_{mb}) \,\|\,
                             \mathrm{softmax}(S^s_{ij,r} / \tau_{mb})\big)

      on the raw student embedding (no projection; channel counts may differ), ``tau_mb`` =
      0.1 (the official code passes its contrast temperature), no ``tau^2`` factor.
    * **memory pixel-to-pixel** (``memory_pixel_weight``, official 0.1) and **memory
      pixel-to-region** (``memory_region_weight``, official 0.1): the student embedding goes
      through a projection head (1x1 conv to the teacher's channels, BN, ReLU, 1x1 conv; trained
      with the student, dropped from the exported student), both sides are L2-normalised, and
      for every non-ignored pixel (anchor ``a``) of the batch

      .. math::
          L_{mem} = \frac{\tau_{kd}^2}{M} \sum_{a} \mathrm{KL}\big(
              \mathrm{softmax}(t_a Q^T / (\tau_c \tau_{kd})) \,\|\,
              \mathrm{softmax}(s_a Q^T / (\tau_c \tau_{kd}))\big)

      where ``Q`` holds ``pixel_contrast_size // num_classes + 1`` randomly chosen entries of
      every class queue (pixel queues of teacher pixel embeddings, region queues of teacher
      class-mean embeddings), ``tau_c`` = 0.1, ``tau_kd`` = 1.

    Memory: per class a pixel queue (``pixel_memory_size``, official 20000) and a region queue
    (``region_memory_size``, official 2000), filled from the **teacher** embeddings of each
    training batch *before* the loss is computed (official order), using the ground truth
    nearest-downsampled to the embedding size; the ignore index never enters. Per image and
    present class: the normalised class mean goes into the region queue at its pointer
    (pointer + 1, modulo the size), and ``min(#pixels, pixel_update_freq)`` (16) random pixels
    go into the pixel queue at its pointer (when they would reach the end, they fill the last
    slots and the pointer restarts at 0, as the official code). Queues start as random unit
    vectors (official). They are buffers (``state_dict``: checkpoints and ``--resume``
    continue them); enqueueing happens only in training mode.

    Distributed: the teacher embeddings and labels of all ranks are gathered
    (``mmengine.dist.all_gather``, as the official ``concat_all_gather``) before enqueueing,
    and every random choice (pixels to enqueue, entries to contrast) comes from a generator
    seeded with ``seed`` and the update counter (a buffer), so all ranks hold identical queues
    (DDP's buffer broadcast from rank 0 changes nothing and rank 0's checkpoint resumes every
    rank). The loss itself uses each rank's own anchors (official).

    A memory larger than the training data can fill (region queue larger than the number of
    training images, pixel queue larger than ``pixel_update_freq`` x that number) is rejected
    before training by ``MemoryBankCheckHook`` (``rtkd/distill/memory_checks.py``; put
    ``dict(type='MemoryBankCheckHook')`` in ``custom_hooks``).

    The official total also has Hinton KD on the logits (weight 1, T = 1): combine this loss
    with ``HintonKD`` in the recipe. Deviations from the official code: random choices use the
    dedicated generator above instead of the global RNG; ``norm_cfg`` defaults to BN (official:
    SyncBN, which needs GPUs; set ``norm_cfg=dict(type='SyncBN')`` there); labels outside
    ``[0, num_classes)`` that are not the ignore index raise instead of indexing out of range;
    a batch without any non-ignored pixel gives 0 for the memory terms (official: the same
    trick). ``minibatch_pool`` (default None = official ``train_cirkd.py``) average-pools both
    embeddings before the mini-batch term (the official ``pooling=True`` used 2), and
    ``with_projector=False`` drops the projection head (student and teacher channels must then
    match).

    Args:
        num_classes (int): number of classes (one queue each).
        student_channels (int): channels of the student embedding.
        teacher_channels (int): channels of the teacher embedding (queue entry size).
        ignore_index (int): label ignored everywhere. Default 255.
        minibatch_weight (float): weight of the mini-batch pixel-to-pixel term. Default 1.0.
        memory_pixel_weight (float): weight of the memory pixel-to-pixel term. Default 0.1.
        memory_region_weight (float): weight of the memory pixel-to-region term. Default 0.1.
        minibatch_tau (float): temperature of the mini-batch similarities. Default 0.1.
        contrast_tau (float): temperature of the memory similarities. Default 0.1.
        contrast_kd_tau (float): KL temperature of the memory terms. Default 1.0.
        pixel_memory_size (int): pixel queue length per class. Default 20000.
        region_memory_size (int): region queue length per class. Default 2000.
        pixel_contrast_size (int): pixel entries contrasted per step, over all classes
            (``// num_classes + 1`` per class). Default 4096.
        region_contrast_size (int): region entries contrasted per step, over all classes.
            Default 1024.
        pixel_update_freq (int): pixels enqueued per class per image. Default 16.
        minibatch_pool (int | None): average-pool kernel for the mini-batch term. Default None.
        with_projector (bool): project the student embedding (official). Default True.
        norm_cfg (dict): norm layer of the projection head. Default ``dict(type='BN')``.
        seed (int): seed of the queue initialisation and of the random choices. Default 0.
        loss_weight (float): multiplier applied to the weighted sum. Default 1.0.
    """

    extra_inputs: tuple[str, ...] = ('data_samples', )

    def __init__(self,
                 num_classes: int,
                 student_channels: int,
                 teacher_channels: int,
                 ignore_index: int = 255,
                 minibatch_weight: float = 1.0,
                 memory_pixel_weight: float = 0.1,
                 memory_region_weight: float = 0.1,
                 minibatch_tau: float = 0.1,
                 contrast_tau: float = 0.1,
                 contrast_kd_tau: float = 1.0,
                 pixel_memory_size: int = 20000,
                 region_memory_size: int = 2000,
                 pixel_contrast_size: int = 4096,
                 region_contrast_size: int = 1024,
                 pixel_update_freq: int = 16,
                 minibatch_pool: Optional[int] = None,
                 with_projector: bool = True,
                 norm_cfg: Optional[dict] = None,
                 seed: int = 0,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        name = type(self).__name__
        for arg, v in (('num_classes', num_classes), ('student_channels', student_channels),
                       ('teacher_channels', teacher_channels), ('pixel_memory_size',
                                                                pixel_memory_size),
                       ('region_memory_size', region_memory_size), ('pixel_contrast_size',
                                                                    pixel_contrast_size),
                       ('region_contrast_size', region_contrast_size), ('pixel_update_freq',
                                                                        pixel_update_freq)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f'{name}: {arg} must be a positive integer, got {v!r}.')
        for arg, v in (('minibatch_weight', minibatch_weight),
                       ('memory_pixel_weight', memory_pixel_weight), ('memory_region_weight',
                                                                      memory_region_weight)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f'{name}: {arg} must be a number >= 0 (0 switches the term '
                                 f'off), got {v!r}.')
        if minibatch_weight == memory_pixel_weight == memory_region_weight == 0:
            raise ValueError(f'{name}: all three term weights are 0; give at least one of '
                             'minibatch_weight, memory_pixel_weight, memory_region_weight > 0.')
        self.minibatch_tau = check_positive(name, 'minibatch_tau', minibatch_tau)
        self.contrast_tau = check_positive(name, 'contrast_tau', contrast_tau)
        self.contrast_kd_tau = check_positive(name, 'contrast_kd_tau', contrast_kd_tau)
        if minibatch_pool is not None and (not isinstance(minibatch_pool, int)
                                           or minibatch_pool < 1):
            raise ValueError(f'{name}: minibatch_pool must be None or a positive integer '
                             f'(pool kernel), got {minibatch_pool!r}.')
        self.num_classes = num_classes
        self.ignore_index = int(ignore_index)
        self.weights = dict(
            minibatch=float(minibatch_weight),
            memory_pixel=float(memory_pixel_weight),
            memory_region=float(memory_region_weight))
        self.pixel_memory_size = pixel_memory_size
        self.region_memory_size = region_memory_size
        self.pixel_update_freq = pixel_update_freq
        # per-class contrast sizes exactly as train_cirkd.py passes them
        self.pixel_per_class = pixel_contrast_size // num_classes + 1
        self.region_per_class = region_contrast_size // num_classes + 1
        if self.uses('memory_pixel') and self.pixel_per_class > pixel_memory_size:
            raise ValueError(
                f'{name}: pixel_contrast_size={pixel_contrast_size} asks for '
                f'{self.pixel_per_class} entries per class but pixel_memory_size is '
                f'{pixel_memory_size}; set pixel_contrast_size <= '
                f'{(pixel_memory_size - 1) * num_classes} or a larger pixel_memory_size.')
        if self.uses('memory_region') and self.region_per_class > region_memory_size:
            raise ValueError(
                f'{name}: region_contrast_size={region_contrast_size} asks for '
                f'{self.region_per_class} entries per class but region_memory_size is '
                f'{region_memory_size}; set region_contrast_size <= '
                f'{(region_memory_size - 1) * num_classes} or a larger region_memory_size.')
        if self.uses('memory_pixel') and pixel_update_freq > pixel_memory_size:
            raise ValueError(f'{name}: pixel_update_freq={pixel_update_freq} pixels per class per '
                             f'image do not fit a pixel queue of {pixel_memory_size}; set '
                             f'pixel_update_freq <= pixel_memory_size.')
        self.minibatch_pool = minibatch_pool
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.seed = int(seed)
        self.memory_checked = False
        self._warned_unchecked = False

        uses_memory = self.uses('memory_pixel') or self.uses('memory_region')
        self.projector = None
        if uses_memory and with_projector:
            from mmcv.cnn import build_norm_layer
            norm = build_norm_layer(dict(norm_cfg or dict(type='BN')), teacher_channels)[1]
            self.projector = nn.Sequential(
                nn.Conv2d(student_channels, teacher_channels, 1, bias=False), norm,
                nn.ReLU(inplace=True), nn.Conv2d(teacher_channels, teacher_channels, 1, bias=False))
        elif uses_memory and student_channels != teacher_channels:
            raise ValueError(f'{name}: with_projector=False needs student_channels == '
                             f'teacher_channels (got {student_channels} vs {teacher_channels}); '
                             'keep the projector or add a ConvBNConnector on the student tap.')
        gen = torch.Generator().manual_seed(self.seed)
        d = teacher_channels
        if self.uses('memory_pixel'):
            self.register_buffer(
                'pixel_queue',
                F.normalize(torch.randn(num_classes, pixel_memory_size, d, generator=gen), dim=2))
            self.register_buffer('pixel_ptr', torch.zeros(num_classes, dtype=torch.long))
        if self.uses('memory_region'):
            self.register_buffer(
                'region_queue',
                F.normalize(torch.randn(num_classes, region_memory_size, d, generator=gen), dim=2))
            self.register_buffer('region_ptr', torch.zeros(num_classes, dtype=torch.long))
        if uses_memory:
            self.register_buffer('num_updates', torch.zeros((), dtype=torch.long))

    def uses(self, term: str) -> bool:
        """Whether a term (``'minibatch'``, ``'memory_pixel'``, ``'memory_region'``) is on."""
        return self.weights[term] > 0

    # ------------------------------------------------------------------ memory checks
    def check_memory_fill(self, num_images: int) -> None:
        """Fail when the queues are larger than ``num_images`` training images can fill.

        Each image adds at most one region entry and ``pixel_update_freq`` pixel entries per
        class, so a longer queue keeps random initial entries for more than an epoch.

        Args:
            num_images (int): number of training images (the train dataset's length).

        Raises:
            ValueError: naming the setting to lower.
        """
        name = type(self).__name__
        if self.uses('memory_region') and self.region_memory_size > num_images:
            raise ValueError(
                f'{name}: region_memory_size={self.region_memory_size} is larger than the '
                f'{num_images} training images can fill (one region per class per image); set '
                f'region_memory_size <= {num_images}.')
        cap = self.pixel_update_freq * num_images
        if self.uses('memory_pixel') and self.pixel_memory_size > cap:
            raise ValueError(
                f'{name}: pixel_memory_size={self.pixel_memory_size} is larger than the '
                f'{num_images} training images can fill ({self.pixel_update_freq} pixels per '
                f'class per image); set pixel_memory_size <= {cap}.')
        self.memory_checked = True

    # ------------------------------------------------------------------ terms
    def minibatch_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Mini-batch pixel-to-pixel term (unweighted), see the class docstring."""
        if self.minibatch_pool:
            k = self.minibatch_pool
            student = F.avg_pool2d(student, k, k, ceil_mode=True)
            teacher = F.avg_pool2d(teacher, k, k, ceil_mode=True)
        n = student.shape[0]
        s = F.normalize(student.flatten(2), dim=1)  # N x C_s x M
        t = F.normalize(teacher.flatten(2), dim=1)
        m = s.shape[2]
        s_all = s.transpose(1, 2).reshape(n * m, -1)  # rows: pixels of image 0, 1, ...
        t_all = t.transpose(1, 2).reshape(n * m, -1)
        total = student.new_zeros(())
        for i in range(n):  # image i against every image j: m x n x m similarities
            s_sim = (s[i].t() @ s_all.t()).view(m, n, m) / self.minibatch_tau
            t_sim = (t[i].t() @ t_all.t()).view(m, n, m) / self.minibatch_tau
            log_ps = F.log_softmax(s_sim, dim=-1)
            log_pt = F.log_softmax(t_sim, dim=-1)
            total = total + (log_pt.exp() * (log_pt - log_ps)).sum()
        return total / (m * n * n)

    def _generator(self) -> torch.Generator:
        # identical on every rank and after --resume (seeded by the update counter)
        return torch.Generator().manual_seed(self.seed * 1000003 + int(self.num_updates))

    @torch.no_grad()
    def enqueue(self, keys: Tensor, labels: Tensor, gen: torch.Generator) -> None:
        """Put a batch of teacher embeddings into the queues (gathered over ranks first).

        Args:
            keys (Tensor): L2-normalised teacher embeddings, ``N x D x h x w``.
            labels (Tensor): ``N x h x w`` labels (ignore index allowed).
            gen (torch.Generator): source of the random pixel choices.
        """
        from mmengine.dist import all_gather, get_world_size
        if get_world_size() > 1:
            shape = torch.tensor(list(keys.shape), device=keys.device)
            shapes = all_gather(shape)
            if any(not torch.equal(s, shapes[0]) for s in shapes):
                raise ValueError(f'{type(self).__name__}: ranks have embeddings of different '
                                 f'shapes {[tuple(s.tolist()) for s in shapes]}; use the same '
                                 'batch size and crop size on every rank.')
            keys = torch.cat(all_gather(keys.contiguous()))
            labels = torch.cat(all_gather(labels.contiguous()))
        n, d = keys.shape[:2]
        for b in range(n):
            feat = keys[b].reshape(d, -1)
            lab = labels[b].reshape(-1)
            for lb in torch.unique(lab).tolist():
                if lb == self.ignore_index:
                    continue
                idxs = (lab == lb).nonzero().squeeze(1)
                if self.uses('memory_region'):
                    ptr = int(self.region_ptr[lb])
                    self.region_queue[lb, ptr] = F.normalize(feat[:, idxs].mean(1), dim=0)
                    self.region_ptr[lb] = (ptr + 1) % self.region_memory_size
                if self.uses('memory_pixel'):
                    perm = torch.randperm(idxs.numel(), generator=gen).to(idxs.device)
                    k = min(idxs.numel(), self.pixel_update_freq)
                    chosen = F.normalize(feat[:, idxs[perm[:k]]].t(), dim=1)
                    ptr = int(self.pixel_ptr[lb])
                    if ptr + k >= self.pixel_memory_size:  # official: fill the tail, restart
                        self.pixel_queue[lb, -k:] = chosen
                        self.pixel_ptr[lb] = 0
                    else:
                        self.pixel_queue[lb, ptr:ptr + k] = chosen
                        self.pixel_ptr[lb] = ptr + k
        self.num_updates += 1

    def _contrast_kd(self, s_anchor: Tensor, t_anchor: Tensor, queue: Tensor, per_class: int,
                     gen: torch.Generator) -> Tensor:
        index = torch.randperm(queue.shape[1], generator=gen)[:per_class].to(queue.device)
        bank = queue[:, index].reshape(-1, queue.shape[2]).to(s_anchor.dtype)  # class-major
        tk = self.contrast_tau * self.contrast_kd_tau
        log_ps = F.log_softmax(s_anchor @ bank.t() / tk, dim=1)
        log_pt = F.log_softmax(t_anchor @ bank.t() / tk, dim=1)
        kl = (log_pt.exp() * (log_pt - log_ps)).sum()
        return kl / s_anchor.shape[0] * self.contrast_kd_tau**2

    def memory_losses(self, student: Tensor, teacher: Tensor,
                      labels: Tensor) -> tuple[Tensor, Tensor]:
        """Memory pixel-to-pixel and pixel-to-region terms (unweighted); enqueues when training.

        Args:
            student (Tensor): student embedding ``N x C_s x h x w``.
            teacher (Tensor): teacher embedding ``N x D x h x w`` (detached here).
            labels (Tensor): ``N x h x w`` labels at the embedding size.

        Returns:
            tuple[Tensor, Tensor]: pixel term, region term (0 for a term that is off).
        """
        t = F.normalize(teacher.detach(), dim=1)
        s = self.projector(student) if self.projector is not None else student
        s = F.normalize(s, dim=1)
        gen = self._generator()
        if self.training:
            self.enqueue(t, labels, gen)
        keep = labels.reshape(-1) != self.ignore_index
        s_anchor = s.permute(0, 2, 3, 1).reshape(-1, s.shape[1])[keep]
        t_anchor = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])[keep]
        zero = (s_anchor * 0).sum()
        if s_anchor.shape[0] == 0:  # only ignored pixels: nothing to distil
            return zero, zero
        pixel = region = zero
        if self.uses('memory_pixel'):
            pixel = self._contrast_kd(s_anchor, t_anchor, self.pixel_queue, self.pixel_per_class,
                                      gen)
        if self.uses('memory_region'):
            region = self._contrast_kd(s_anchor, t_anchor, self.region_queue, self.region_per_class,
                                       gen)
        return pixel, region

    def forward(self, student: Tensor, teacher: Tensor, data_samples=None, **extra) -> Tensor:
        """Compute the weighted CIRKD loss.

        Args:
            student (Tensor): student embedding, ``N x C_s x h x w``.
            teacher (Tensor): teacher embedding, ``N x C_t x h x w`` (detached here).
            data_samples (list[SegDataSample]): the batch's samples (``gt_sem_seg``).
            **extra: ignored.

        Returns:
            Tensor: scalar ``loss_weight * (w_mb L_mb + w_pix L_pix + w_reg L_reg)``.
        """
        name = type(self).__name__
        check_shapes(name, student, teacher, min_dim=4, max_dim=4, match_channels=False)
        if student.shape[1] != self.student_channels or \
                teacher.shape[1] != self.teacher_channels:
            raise ValueError(f'{name}: got student/teacher channels {student.shape[1]}/'
                             f'{teacher.shape[1]} but the loss was built with '
                             f'student_channels={self.student_channels}, teacher_channels='
                             f'{self.teacher_channels}; set them to the tapped channels.')
        teacher = teacher.detach()
        total = student.new_zeros(())
        if self.uses('minibatch'):
            total = total + self.weights['minibatch'] * self.minibatch_loss(student, teacher)
        if self.uses('memory_pixel') or self.uses('memory_region'):
            labels = stack_gt_labels(name, data_samples, student.shape[-2:]).to(student.device)
            bad = (labels != self.ignore_index) & ((labels < 0) | (labels >= self.num_classes))
            if bool(bad.any()):
                raise ValueError(f'{name}: label value {int(labels[bad][0])} is neither a class '
                                 f'in [0, {self.num_classes}) nor ignore_index='
                                 f'{self.ignore_index}; set num_classes / ignore_index to the '
                                 "dataset's.")
            if self.training and not self.memory_checked and not self._warned_unchecked:
                self._warned_unchecked = True
                print_log(
                    f"{name}: the memory sizes were not checked against the training set; "
                    "add custom_hooks=[dict(type='MemoryBankCheckHook')] to the config.",
                    logger='current',
                    level=logging.WARNING)
            pixel, region = self.memory_losses(student, teacher, labels)
            total = total + self.weights['memory_pixel'] * pixel \
                + self.weights['memory_region'] * region
        return total * self.loss_weight
