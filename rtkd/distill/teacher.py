"""The frozen teacher: how it is built, isolated, fed and run (shared by every distiller).

* :func:`build_frozen_teacher` builds a teacher from its spec without drawing from the global RNG,
  loads its checkpoint (checked to match the architecture), freezes it and puts it in eval mode
  (:func:`freeze_teacher`).
* :func:`input_transform` / :func:`adapt_inputs` re-normalise a batch made by one data
  preprocessor (the student's) into what another one (the teacher's, or a cohort member's) would
  have made of the same raw image: mean/std and channel order.
* :func:`run_truncated` runs a frozen network under ``no_grad`` while a
  :class:`~rtkd.distill.taps.TapSet` records, cut short by ``TeacherDone`` once every tap fired.
* :func:`teacher_identity` is what identifies a teacher in a teacher-cache manifest or in the
  knowledge-adaptation auto-encoder's meta.

Isolation (the teacher is no registered submodule of the distiller, so it is not in
``state_dict()``, not seen by DDP and not switched to train mode by the Runner) is the owner's
job: the distillers keep it in a list (``self._teacher = [model]``).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from .builder import (build_network, load_config, normalize_spec, resolve_checkpoint_path,
                      resolve_config_path)
from .checkpoint_checks import check_checkpoint_match
from .taps import TapSet, TeacherDone
from .teacher_cache import file_sha256, text_digest

#: ``(src_mean, src_std, dst_mean, dst_std, flip)``, see :func:`input_transform`
InputTransform = Tuple[Tensor, Tensor, Tensor, Tensor, bool]


class TeacherNotBuilt(RuntimeError):
    """The teacher is not built: its targets come from a teacher cache, or there is none."""


def bgr_to_rgb(preprocessor: Optional[nn.Module]) -> bool:
    """Whether a data preprocessor flips channel order.

    The flag has a different name in each toolbox: mmseg ``channel_conversion``, mmengine's
    ``ImgDataPreprocessor`` (mmdet) ``_channel_conversion``, mmpretrain ``to_rgb``.

    Args:
        preprocessor (nn.Module | None): a data preprocessor (None: no conversion).

    Returns:
        bool: True when it converts BGR to RGB.
    """
    for name in ('channel_conversion', '_channel_conversion', 'to_rgb'):
        if hasattr(preprocessor, name):
            return bool(getattr(preprocessor, name))
    return False


def input_transform(src: Optional[nn.Module], dst: Optional[nn.Module]) -> Optional[InputTransform]:
    """How to turn a batch preprocessed by ``src`` into what ``dst`` would have made of it.

    A preprocessor without normalisation (``_enable_normalize`` False, e.g. a teacher that
    expects raw pixels) counts as mean 0 / std 1; the channel order is flipped when exactly one
    side converts BGR to RGB (:func:`bgr_to_rgb`).

    Args:
        src (nn.Module | None): the preprocessor that made the batch (the student's).
        dst (nn.Module | None): the preprocessor of the network that reads it (the teacher's).

    Returns:
        tuple | None: ``(src_mean, src_std, dst_mean, dst_std, flip)`` for :func:`adapt_inputs`,
        or None when ``dst`` takes the batch as it is.
    """
    sides = []
    for pre in (src, dst):
        if pre is not None and getattr(pre, '_enable_normalize', False):
            sides.append((pre.mean.detach().clone().float(), pre.std.detach().clone().float()))
        else:  # raw pixels
            sides.append((torch.zeros(1, 1, 1), torch.ones(1, 1, 1)))
    (s_mean, s_std), (t_mean, t_std) = sides
    flip = bgr_to_rgb(src) != bgr_to_rgb(dst)
    same = all(a.shape == b.shape and torch.equal(a, b)
               for a, b in ((s_mean, t_mean), (s_std, t_std)))
    if same and not flip:
        return None
    return (s_mean, s_std, t_mean, t_std, flip)


def adapt_inputs(transform: Optional[InputTransform], inputs: Tensor) -> Tensor:
    """Apply a transform from :func:`input_transform` (None: ``inputs`` unchanged).

    Args:
        transform (tuple | None): from :func:`input_transform`.
        inputs (Tensor): the batch as ``src`` made it.

    Returns:
        Tensor: the batch as ``dst`` would have made it.
    """
    if transform is None:
        return inputs
    s_mean, s_std, t_mean, t_std, flip = (
        t.to(inputs.device) if torch.is_tensor(t) else t for t in transform)
    x = inputs * s_std + s_mean  # the image as loaded, in the source's channel order
    if flip and x.dim() == 4 and x.shape[1] == 3:
        x = x.flip(1)
    return (x - t_mean) / t_std


def move_transform(transform: Optional[InputTransform], fn) -> Optional[InputTransform]:
    """``transform`` with ``fn`` (an ``nn.Module._apply`` function) applied to its tensors."""
    if transform is None:
        return None
    return tuple(fn(t) if torch.is_tensor(t) else t for t in transform)


def freeze_teacher(model: nn.Module, ckpt: Optional[str]) -> nn.Module:
    """Load the teacher's checkpoint, freeze it and put it in eval mode.

    Every teacher weight except training-only heads must come from the checkpoint
    (:func:`~rtkd.distill.checkpoint_checks.check_checkpoint_match`); ``ckpt=None`` keeps the
    random initialisation (with a warning). SyncBN is reverted to BN (eval only; SyncBN needs
    GPUs).

    Args:
        model (nn.Module): the built teacher.
        ckpt (str | None): local path or URL (loaded on CPU), or None.

    Returns:
        nn.Module: ``model`` frozen (``requires_grad=False``) and in eval mode.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.runner import load_checkpoint
    if ckpt is not None:
        try:
            loaded = load_checkpoint(
                model, ckpt, map_location='cpu', strict=False, logger='current')
        except OSError as e:  # urllib's URLError is an OSError too
            if '://' not in str(ckpt):
                raise
            raise RuntimeError(
                f'cannot download the teacher checkpoint {ckpt!r} ({e}); download it where '
                'there is network and set teacher.checkpoint to the local file.') from e
        sd = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
        check_checkpoint_match(model.state_dict().keys(), sd.keys(), f'teacher checkpoint {ckpt!r}')
    else:
        print_log(
            'teacher checkpoint=None: distilling from a randomly initialised teacher.',
            logger='current',
            level=logging.WARNING)
    model = revert_sync_batchnorm(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def build_frozen_teacher(spec: dict) -> Tuple[nn.Module, Optional[str]]:
    """Build, load and freeze a teacher without drawing from the global RNG.

    Not drawing from the RNG keeps a run with a teacher cache (teacher not built) initialising
    its student exactly like a live run.

    Args:
        spec (dict): teacher spec (``config``/``model``, ``checkpoint``, ``cfg_options``,
            ``scope``; forms of :func:`rtkd.distill.builder.build_network`).

    Returns:
        tuple: ``(teacher, scope)``.
    """
    with torch.random.fork_rng(devices=[]):
        model, ckpt, scope = build_network(spec, 'teacher')
    return freeze_teacher(model, ckpt), scope


def run_truncated(model: nn.Module,
                  tapset: TapSet,
                  inputs: Tensor,
                  data_samples: Any,
                  mode: str = 'tensor') -> Dict[str, Any]:
    """Run a frozen network under ``no_grad`` and return what its taps recorded.

    The forward stops early (``TeacherDone``) when ``tapset`` was built with
    ``stop_when_done=True`` and every tap fired. The network follows ``inputs``' device.

    Args:
        model (nn.Module): the frozen network.
        tapset (TapSet): its taps.
        inputs (Tensor): the batch, already in the network's normalisation.
        data_samples: the batch's data samples.
        mode (str): the network's forward mode.

    Returns:
        dict: tap name -> recorded value (taps that never fired are left out).
    """
    p = next(model.parameters(), None)
    if p is not None and p.device != inputs.device:
        model.to(inputs.device)
    with torch.no_grad(), tapset.recording() as rec:
        try:
            model(inputs, data_samples, mode=mode)
        except TeacherDone:
            pass
    return dict(rec)


def normalize_teacher_spec(teacher: Any, owner: str = 'teacher') -> dict:
    """The dict form of a teacher spec: ``dict(config=...)`` or ``dict(model=...)`` + keys.

    Args:
        teacher (str | dict): a config path, a model dict (has ``type``) or a spec dict.
        owner (str): who asks (used in the message).

    Returns:
        dict: the spec (a copy); it still holds ``cache`` if given.

    Raises:
        ValueError: when no ``checkpoint`` key is given.
    """
    spec = dict(teacher) if isinstance(teacher, dict) else dict(config=teacher)
    if isinstance(teacher, dict) and 'type' in teacher:
        spec = dict(model=dict(teacher))
    if 'checkpoint' not in spec:
        raise ValueError(f"{owner}: the teacher needs weights: give teacher=dict(config=..., "
                         "checkpoint='<path or URL>') (or checkpoint=None on purpose).")
    return spec


def teacher_identity(spec: dict) -> dict:
    """What identifies a teacher in a cache manifest: model config digest, checkpoint hash.

    Args:
        spec (dict): the teacher spec (``config`` or ``model``, ``checkpoint``, ``cfg_options``).

    Returns:
        dict: ``teacher_config`` (digest of the built model config) and
        ``teacher_checkpoint_sha256`` (None when the checkpoint is not a local file).
    """
    spec = normalize_spec(dict(spec), 'teacher')
    if 'config' in spec:
        cfg = load_config(resolve_config_path(spec['config'], 'teacher config'))
        if spec.get('cfg_options'):
            cfg.merge_from_dict(dict(spec['cfg_options']))
        model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    else:
        model = dict(spec['model'])
    ckpt = spec.get('checkpoint')
    sha = None
    if ckpt is not None and '://' not in str(ckpt):
        sha = file_sha256(resolve_checkpoint_path(ckpt, 'teacher'))
    return dict(
        teacher_config=text_digest(model),
        teacher_checkpoint_sha256=sha,
        teacher_checkpoint=None if ckpt is None else str(ckpt))
