"""Knowledge-adaptation connectors: the frozen stage-1 encoder (teacher side), the adapters
(student side), and the build-time check that a stage-1 checkpoint fits the teacher tap."""
from __future__ import annotations

import logging
from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import MODELS
from torch import Tensor

from ..builder import resolve_checkpoint_path
from ..connectors import BaseConnector
from ..taps import TapSpec, resolve_module
from .autoencoder import KAAutoEncoder

#: state-dict prefix of the auto-encoder in a stage-1 checkpoint
AE_PREFIX = 'autoencoder.'


def tapped_channels(model: nn.Module, spec: TapSpec) -> Optional[int]:
    """Channels of a tapped tensor read from the module's definition (no forward).

    ``#in`` of a conv / BN / linear layer: ``in_channels`` / ``num_features`` /
    ``in_features``; ``#out``: ``out_channels`` / ``num_features`` / ``out_features``.

    Args:
        model (nn.Module): the network the tap belongs to.
        spec (TapSpec): the tap.

    Returns:
        int | None: the channel count, or None when the module does not say (e.g. a dropout,
        a whole head, an indexed tuple output).
    """
    module = resolve_module(model, spec.module, spec.side)
    if spec.use_input and tuple(spec.index) == (0, ):
        attrs = ('in_channels', 'num_features', 'in_features')
    elif not spec.use_input and not spec.index:
        attrs = ('out_channels', 'num_features', 'out_features')
    else:
        return None
    for attr in attrs:
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def read_stage1_checkpoint(checkpoint: str) -> tuple:
    """Read a knowledge-adaptation stage-1 checkpoint.

    Args:
        checkpoint (str): path (local, relative to cwd or repo root) or URL.

    Returns:
        tuple: (resolved path, auto-encoder state dict without prefix, meta dict).
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    path = resolve_checkpoint_path(str(checkpoint), 'knowledge-adaptation stage-1')
    ckpt = _load_checkpoint(path, map_location='cpu')
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    meta = sd.get(AE_PREFIX + '_extra_state') if isinstance(sd, dict) else None
    if not isinstance(meta, dict) or 'arch' not in meta or 'tap' not in meta:
        raise ValueError(f'{path!r} is not a knowledge-adaptation stage-1 checkpoint (it has no '
                         f"'{AE_PREFIX}_extra_state' meta); give the iter_N.pth written by the "
                         f'stage-1 recipe (configs/distill/seg/ka/ka-ae_*.py).')
    ae_sd = {k[len(AE_PREFIX):]: v for k, v in sd.items() if k.startswith(AE_PREFIX)}
    return path, ae_sd, meta


@MODELS.register_module()
class KAEncoderConnector(BaseConnector):
    r"""The frozen encoder ``E`` of a knowledge-adaptation stage-1 checkpoint, on a teacher tap.

    He et al., "Knowledge Adaptation for Efficient Semantic Segmentation" (CVPR 2019): in stage 2
    the student matches ``E(F_t)``, the auto-encoder's compressed code of the teacher feature,
    with ``W_E`` fixed. ``y = E(x)``, computed under ``no_grad``; parameters have
    ``requires_grad=False`` and the module stays in eval mode (its BN statistics never change,
    also while the distiller trains), so it is a valid teacher-side connector. The architecture
    comes from the checkpoint's meta (:class:`~rtkd.distill.ka.KAAutoEncoder`); only the encoder
    is kept.

    At build time the knowledge-adaptation losses call :meth:`check_teacher`: the checkpoint's
    tap and channels must be the teacher tap's, else one ``ValueError`` sentence says what to fix.

    Args:
        checkpoint (str): stage-1 checkpoint (``work_dirs/<stage-1 recipe>/iter_N.pth``).
        like (str | None): unused, kept for a uniform interface.
    """

    def __init__(self, checkpoint: str, like: Optional[str] = None) -> None:
        super().__init__(like)
        self.checkpoint, ae_sd, meta = read_stage1_checkpoint(checkpoint)
        try:
            ae = KAAutoEncoder(**meta['arch'])
            ae.load_state_dict(ae_sd, strict=True)
        except (RuntimeError, TypeError, ValueError) as e:
            raise ValueError(f'the stage-1 checkpoint {self.checkpoint!r} does not match its own '
                             f'auto-encoder meta {meta["arch"]} ({e}); re-run stage 1.') from e
        self.meta = dict(ae.meta)
        self.in_channels = ae.in_channels
        self.code_channels = ae.code_channels
        self.encoder = ae.encoder
        self.encoder.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> 'KAEncoderConnector':
        """Always eval: the encoder is frozen, BN statistics included."""
        return super().train(False)

    def check_teacher(self, distiller, tap: str) -> None:
        """Refuse a stage-1 checkpoint made on another teacher feature.

        Args:
            distiller: the :class:`~rtkd.distill.Distiller` being built.
            tap (str): name of the teacher tap this connector sits on.

        Raises:
            ValueError: the checkpoint's tap (module, ``#in``/``#out``, index, call) or channel
                count differs from the teacher tap's.
        """
        spec = distiller.tap_specs[tap]
        want = TapSpec.parse('stage1', self.meta['tap'])
        if (spec.module, spec.use_input, tuple(spec.index), spec.call) != \
                (want.module, want.use_input, tuple(want.index), want.call):
            raise ValueError(f'the knowledge-adaptation checkpoint {self.checkpoint!r} encodes '
                             f'{want.text!r} but teacher tap {tap!r} is {spec.text!r}; set '
                             f'{tap}={want.text!r} or train stage 1 on {spec.text!r}.')
        channels = tapped_channels(distiller.teacher, spec)  # TeacherNotBuilt: distiller builds it
        if channels is not None and channels != self.in_channels:
            raise ValueError(f'the knowledge-adaptation checkpoint {self.checkpoint!r} encodes '
                             f'{self.in_channels}-channel features but teacher tap {tap!r} '
                             f'({spec.text!r}) has {channels} channels; train stage 1 with this '
                             f'teacher (its checkpoint is for another one).')
        recorded = self.meta.get('teacher') or {}
        try:
            from ..teacher import teacher_identity
            now = teacher_identity(distiller._teacher_spec)
        except Exception:  # identity is a courtesy check; the tap/channel checks are the rule
            return
        diff = [
            k for k in ('teacher_config', 'teacher_checkpoint_sha256')
            if recorded.get(k) is not None and now.get(k) is not None and recorded[k] != now[k]
        ]
        if diff:
            print_log(
                f'knowledge adaptation: the stage-1 checkpoint {self.checkpoint!r} was '
                f'trained on another teacher ({", ".join(diff)} differ: '
                f'{recorded.get("teacher_checkpoint")!r} vs '
                f'{now.get("teacher_checkpoint")!r}).',
                logger='current',
                level=logging.WARNING)

    def forward(self, x: Tensor, ref: Optional[Tensor] = None) -> Tensor:
        """``E(x)`` for a teacher feature ``x`` (``N x in_channels x H x W``), no gradient."""
        if x.dim() < 2 or x.shape[1] != self.in_channels:
            raise ValueError(f'KAEncoderConnector: the stage-1 encoder expects {self.in_channels} '
                             f'channels but the teacher tap has shape {tuple(x.shape)}; tap '
                             f"{self.meta['tap']!r} or train stage 1 on this feature.")
        with torch.no_grad():
            return self.encoder(x)


@MODELS.register_module()
class KAAdapter(BaseConnector):
    r"""Student feature adapter of knowledge adaptation (He et al., CVPR 2019).

    The paper's adapter ``C_f``: ``y = ReLU(BN(W * x))`` with ``W`` a 3x3 convolution, stride 1,
    padding 1, ``in_channels -> out_channels`` (the code width). ``norm=False, relu=False`` gives a
    plain 3x3 convolution (with bias), torchdistill's ``affinity_adapter`` ``C_a`` (the paper
    does not describe ``C_a``).

    Deviation: ``stride`` (default 1, the paper's) lets the adapter follow an encoder with a
    stride-2 layer when student and teacher features have the same size (the paper's student
    has twice the teacher's output stride instead); a 3x3 / padding-1 / stride-s conv gives
    the same output size as the encoder's for the same input size.

    Args:
        in_channels (int): student channels.
        out_channels (int): code channels of the stage-1 encoder.
        stride (int): 1 (paper) or 2. Default 1.
        norm (bool): BatchNorm after the conv. Default True.
        relu (bool): ReLU at the end. Default True.
        like (str | None): unused, kept for a uniform interface.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 norm: bool = True,
                 relu: bool = True,
                 like: Optional[str] = None) -> None:
        super().__init__(like)
        if stride not in (1, 2):
            raise ValueError(f'KAAdapter: stride must be 1 or 2 (the encoder strides), got '
                             f'{stride!r}.')
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not norm)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.act = nn.ReLU(inplace=False) if relu else nn.Identity()

    def forward(self, x: Tensor, ref: Optional[Tensor] = None) -> Tensor:
        """Adapt ``x`` (N x in_channels x H x W) to N x out_channels x H/stride x W/stride."""
        self._check_channels(x, self.in_channels)
        return self.act(self.bn(self.conv(x)))
