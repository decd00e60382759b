"""Stage 1 of knowledge adaptation: train the auto-encoder on a frozen teacher's feature."""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import Tensor

from ..taps import TapSet, TapSpec
from ..teacher import build_frozen_teacher, normalize_teacher_spec, run_truncated, teacher_identity
from .autoencoder import KAAutoEncoder
from .connectors import tapped_channels


@MODELS.register_module()
class KATeacherAutoEncoder(BaseModel):
    r"""Stage 1 of "Knowledge Adaptation for Efficient Semantic Segmentation" (He et al., CVPR
    2019): a :class:`~rtkd.distill.ka.KAAutoEncoder` learns to reconstruct the frozen teacher's
    feature ``F_t`` (``L = ||F_t - D(E(F_t))||^2 + alpha ||E(F_t)||_1``, see
    :class:`~rtkd.distill.losses.KAReconstructionLoss`), trained by the stock Runner::

        model = dict(type='KATeacherAutoEncoder',
                     teacher=dict(config='<teacher config>', checkpoint='<teacher weights>'),
                     tap='teacher:decode_head.conv_seg#in',     # the teacher's last feature map
                     autoencoder=dict(channels=(256, 256, 128), strides=(2, 1, 1)),
                     loss=dict(type='KAReconstructionLoss', reg_weight=1e-7))

    The teacher is built from its spec (forms of :func:`rtkd.distill.builder.build_network`),
    loaded, frozen (``requires_grad=False``), kept in eval mode and run under ``no_grad`` only as
    far as the tap needs (:class:`~rtkd.distill.taps.TapSet` early stop). It is not a registered
    submodule: the state dict (so every checkpoint) holds the auto-encoder only, with its meta
    (``autoencoder._extra_state``: architecture, tap string, teacher config digest and
    checkpoint hash), which stage 2 (:class:`~rtkd.distill.ka.KAEncoderConnector`) checks.

    Inputs are normalised by the teacher's own data preprocessor (a copy, unless
    ``data_preprocessor`` is given). ``mode='tensor'`` returns the code ``E(F_t)``; there is no
    ``predict``: stage-1 recipes set ``val_cfg=None`` (the logged ``loss_rec`` is the
    reconstruction error on the training batches).

    Args:
        teacher (str | dict): teacher spec with ``checkpoint`` (as for the Distiller).
        tap (str): teacher feature, ``'teacher:<module>[@call][#in|#out][i]'`` (``'teacher:'``
            may be left out).
        autoencoder (dict | None): :class:`KAAutoEncoder` arguments; ``in_channels`` defaults
            to the tapped module's channel count.
        loss (dict | None): reconstruction loss config. Default
            ``dict(type='KAReconstructionLoss')``.
        teacher_mode (str): mode the teacher runs in. Default ``'tensor'``.
        data_preprocessor (dict | None): default: the teacher's.
        init_cfg (dict | None): mmengine init config.
    """

    def __init__(self,
                 teacher: Union[str, dict],
                 tap: str,
                 autoencoder: Optional[dict] = None,
                 loss: Optional[dict] = None,
                 teacher_mode: str = 'tensor',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        spec = normalize_teacher_spec(teacher, 'KATeacherAutoEncoder')
        if 'cache' in spec:
            raise ValueError('KATeacherAutoEncoder runs the live teacher; remove teacher.cache.')
        t_model, _ = build_frozen_teacher(spec)  # as the Distiller's (no draw from the RNG)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if data_preprocessor is None:
            pre = getattr(t_model, 'data_preprocessor', None)
            if not isinstance(pre, nn.Module):
                raise TypeError('the teacher has no data_preprocessor; give '
                                'KATeacherAutoEncoder one with data_preprocessor=dict(...).')
            self.data_preprocessor = copy.deepcopy(pre)
        self._teacher: List[nn.Module] = [t_model]  # a list: not a submodule, not in state_dict
        self.teacher_mode = teacher_mode

        if not isinstance(tap, str):
            raise TypeError(f"tap must be a string like 'teacher:decode_head.conv_seg#in', got "
                            f'{type(tap).__name__}.')
        text = tap if tap.startswith(('teacher:', 'student:')) else f'teacher:{tap}'
        self.tap = TapSpec.parse('t_feat', text)
        if self.tap.side != 'teacher':
            raise ValueError(f"KATeacherAutoEncoder taps the teacher: write 'teacher:"
                             f"{self.tap.module}{self.tap.tail}', not {tap!r}.")
        self._tapset = TapSet(t_model, [self.tap], 'teacher', stop_when_done=True)

        ae_cfg = dict(autoencoder or {})
        if 'in_channels' not in ae_cfg:
            channels = tapped_channels(t_model, self.tap)
            if channels is None:
                raise ValueError(f'cannot read the channel count of tap {text!r} from the '
                                 f'module; set autoencoder=dict(in_channels=C, ...).')
            ae_cfg['in_channels'] = channels
        self.autoencoder = KAAutoEncoder(**ae_cfg)
        ident = teacher_identity(spec)
        self.autoencoder.meta.update(
            tap=self.tap.text,
            teacher=dict(
                teacher_config=ident['teacher_config'],
                teacher_checkpoint_sha256=ident['teacher_checkpoint_sha256'],
                teacher_checkpoint=ident['teacher_checkpoint']))
        self.loss_module = MODELS.build(dict(loss or dict(type='KAReconstructionLoss')))

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a registered submodule)."""
        return self._teacher[0]

    def train(self, mode: bool = True) -> 'KATeacherAutoEncoder':
        """Switch the auto-encoder; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self.__dict__.get('_teacher'):
            self.teacher._apply(fn, *args, **kwargs)  # follow the auto-encoder's device/dtype
        return self

    def teacher_feature(self, inputs: Tensor, data_samples: Optional[list] = None) -> Tensor:
        """Run the frozen teacher (no_grad, cut short after the tap) and return the feature.

        Args:
            inputs (Tensor): batch normalised by the teacher's preprocessor.
            data_samples (list | None): the batch's data samples.

        Returns:
            Tensor: the tapped feature, ``N x C x H x W``.
        """
        rec = run_truncated(self.teacher, self._tapset, inputs, data_samples, self.teacher_mode)
        if self.tap.name not in rec:
            raise RuntimeError(f'tap {self.tap.text!r} never fired: module '
                               f'{self.tap.module!r} is not called in the teacher forward; tap '
                               f'a module that runs.')
        feat = rec[self.tap.name]
        if not torch.is_tensor(feat) or feat.dim() != 4:
            raise ValueError(f'tap {self.tap.text!r} gives '
                             f'{tuple(feat.shape) if torch.is_tensor(feat) else type(feat)}; '
                             f'the auto-encoder needs an N x C x H x W feature map.')
        return feat

    def loss(self, inputs: Tensor, data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Reconstruction (``loss_rec``) and code-sparsity (``loss_reg``) terms."""
        feat = self.teacher_feature(inputs, data_samples)
        code, recon = self.autoencoder(feat)
        return self.loss_module(recon, feat, code)

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None, mode: str = 'tensor'):
        """``loss``: the stage-1 losses; ``tensor``: the code ``E(F_t)``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            return self.autoencoder.encode(self.teacher_feature(inputs, data_samples))
        raise RuntimeError(f"KATeacherAutoEncoder has no {mode!r} mode (it predicts no "
                           f"segmentation): use mode='loss' or 'tensor', and val_cfg=None.")
