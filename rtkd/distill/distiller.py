"""A task-agnostic offline distiller: frozen teacher -> student, declared in one config dict.

Recipe (an mmseg example; detectors/classifiers work the same way)::

    model = dict(
        type='Distiller',
        student='configs/fast_scnn/<student>.py',   # path, 'pkg::path', dict(config=..), model dict
        teacher=dict(config='../shared/teachers/bisenetv2_camvid-240x320_infer.py',
                     checkpoint='../shared/teachers/bisenetv2_camvid-240x320.pth'),
        taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
        connectors=dict(s_logits=dict(type='ResizeConnector', like='t_logits')),   # optional
        losses=dict(loss_cwd=dict(type='ChannelWiseKD', tau=4.0, loss_weight=3.0,
                                  student='s_logits', teacher='t_logits',
                                  schedule=dict(warmup_iters=100))),              # optional
        freeze_student=dict(modules=['backbone'], iters=500))                      # optional

Training step: the student computes its own task losses with its own ``loss()`` (logged under
their usual names, e.g. ``decode.loss_ce``) while forward hooks record the student taps; the
teacher (eval mode, no_grad, frozen, cut short once all its taps fired) runs on the same
preprocessed batch; each distillation loss gets its two taps (after the connectors) and its
extra inputs, and its output is multiplied by its schedule factor. ``predict``/``tensor`` modes run
the student only, so validation and testing measure the student and never run the teacher.

The teacher is kept out of ``self._modules``: it is not in ``state_dict()`` (checkpoints hold the
student, connectors and discriminators), not seen by DDP and not switched to train mode by the
Runner. Taps, losses and connectors are validated when the distiller is built.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Union

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import MODELS
from torch import Tensor

from .builder import build_network
from .connectors import build_connector
from .schedules import build_schedule
from .taps import TapSet, TapSpec, TeacherDone, resolve_module

_SPECIAL_INPUTS = ('inputs', 'data_samples')


def _bgr_to_rgb(preprocessor: nn.Module) -> bool:
    """Whether a data preprocessor flips channel order.

    The flag has a different name in each toolbox: mmseg ``channel_conversion``, mmengine's
    ``ImgDataPreprocessor`` (mmdet) ``_channel_conversion``, mmpretrain ``to_rgb``.
    """
    for name in ('channel_conversion', '_channel_conversion', 'to_rgb'):
        if hasattr(preprocessor, name):
            return bool(getattr(preprocessor, name))
    return False
_MAP_KEYS = ('student', 'teacher', 'schedule')


@MODELS.register_module()
class Distiller(BaseModel):
    """Offline knowledge distillation for any OpenMMLab model with a ``loss()`` method.

    Args:
        student (str | dict): student spec: config path, ``'pkg::path'``, a model dict, or
            ``dict(config=..., checkpoint=..., cfg_options=..., scope=...)``. Its optional
            ``checkpoint`` initialises the student (loaded after ``init_weights``).
        teacher (str | dict): teacher spec, same forms; ``checkpoint`` (local path or URL,
            loaded on CPU) is required (pass ``checkpoint=None`` explicitly to distil from a
            randomly initialised teacher).
        taps (dict[str, str]): tap name -> ``'<student|teacher>:<dotted.module>[#in|#out][i]'``
            (see :mod:`rtkd.distill.taps`).
        losses (dict[str, dict]): loss name (must contain ``'loss'``) -> loss config with the
            extra keys ``student`` / ``teacher`` (tap names), optional ``schedule`` (see
            :class:`~rtkd.distill.schedules.LossSchedule`) and, for each name in the loss class's
            ``extra_inputs`` that is not ``'inputs'``/``'data_samples'``, the tap it reads.
        connectors (dict[str, dict | list[dict]] | None): tap name -> connector config (a list
            chains several). Applied to the tap before any loss sees it.
        freeze_student (dict | None): ``dict(modules=['backbone'], iters=N)``: the named student
            parts get no updates (and their BN layers stay in eval mode) for the first N
            iterations.
        teacher_mode (str): mode used to run the teacher (``'tensor'``: backbone + heads
            without post-processing or losses).
        teacher_early_stop (bool): stop the teacher forward once all its taps fired.
        data_preprocessor (dict | None): defaults to the student's own data preprocessor.
        init_cfg (dict | None): mmengine init config for the distiller.
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Union[str, dict],
                 taps: Dict[str, str],
                 losses: Dict[str, dict],
                 connectors: Optional[Dict[str, Union[dict, list]]] = None,
                 freeze_student: Optional[dict] = None,
                 teacher_mode: str = 'tensor',
                 teacher_early_stop: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(taps, dict) or not taps:
            raise ValueError("Distiller needs taps=dict(<name>='student:<module>' | "
                             "'teacher:<module>', ...).")
        if not isinstance(losses, dict) or not losses:
            raise ValueError('Distiller needs losses=dict(loss_<name>=dict(type=..., '
                             "student='<tap>', teacher='<tap>')).")

        # --- networks -------------------------------------------------------------------
        self.student, self._student_ckpt, self.student_scope = build_network(student, 'student')
        self._load_student_checkpoint()
        if data_preprocessor is None:
            if not isinstance(getattr(self.student, 'data_preprocessor', None), nn.Module):
                raise TypeError('the student has no data_preprocessor; give the Distiller one '
                                'with data_preprocessor=dict(...).')
            self.data_preprocessor = self.student.data_preprocessor
        teacher_spec = dict(teacher) if isinstance(teacher, dict) else dict(config=teacher)
        if isinstance(teacher, dict) and 'type' in teacher:
            teacher_spec = dict(model=dict(teacher))
        if 'checkpoint' not in teacher_spec:
            raise ValueError('teacher needs weights: give teacher=dict(config=..., '
                             "checkpoint='<path or URL>') (or checkpoint=None on purpose).")
        t_model, t_ckpt, self.teacher_scope = build_network(teacher_spec, 'teacher')
        self._teacher: List[nn.Module] = [self._prepare_teacher(t_model, t_ckpt)]
        self.teacher_mode = teacher_mode
        self._teacher_norm = self._teacher_input_transform()

        # --- taps -----------------------------------------------------------------------
        self.tap_specs: Dict[str, TapSpec] = {n: TapSpec.parse(n, t) for n, t in taps.items()}
        by_side = {s: [sp for sp in self.tap_specs.values() if sp.side == s]
                   for s in ('student', 'teacher')}
        self._taps = {
            'student': TapSet(self.student, by_side['student'], 'student'),
            'teacher': TapSet(self.teacher, by_side['teacher'], 'teacher',
                              stop_when_done=teacher_early_stop),
        }

        # --- losses -----------------------------------------------------------------------
        self.losses = nn.ModuleDict()
        self.loss_maps: Dict[str, dict] = {}
        self.schedules: Dict[str, Any] = {}
        for name, cfg in losses.items():
            self._add_loss(name, dict(cfg))

        # --- connectors ---------------------------------------------------------------------
        self.connectors = nn.ModuleDict()
        used = {m[k] for m in self.loss_maps.values() for k in ('student', 'teacher')}
        used |= {v for m in self.loss_maps.values() for v in m['extras'].values()}
        for tap, cfg in (connectors or {}).items():
            if tap not in self.tap_specs:
                raise KeyError(f'connector key {tap!r} is not a tap; key connectors by tap name '
                               f'(taps: {", ".join(self.tap_specs)}).')
            if tap not in used:
                raise ValueError(f'connector on tap {tap!r} is not used by any loss; remove it '
                                 f'(unused trainable parameters break DDP).')
            chain = build_connector(cfg if isinstance(cfg, (list, tuple)) else [cfg])
            for like in chain.likes:
                if like is not None and like not in self.tap_specs:
                    raise KeyError(f'connector on tap {tap!r} refers to like={like!r}, which is '
                                   f'not a tap (taps: {", ".join(self.tap_specs)}).')
            if self.tap_specs[tap].side == 'teacher' and any(
                    p.requires_grad for p in chain.parameters()):
                raise ValueError(f'connector on teacher tap {tap!r} has trainable parameters; '
                                 f'put learned connectors on the student tap (teacher-side '
                                 f'connectors must be parameter-free, e.g. ResizeConnector).')
            self.connectors[tap] = chain

        # --- freezing ------------------------------------------------------------------------
        self.freeze_cfg = None
        if freeze_student:
            mods = freeze_student.get('modules') if isinstance(freeze_student, dict) else None
            iters = freeze_student.get('iters') if isinstance(freeze_student, dict) else None
            if not mods or iters is None:
                raise ValueError("freeze_student must be dict(modules=['backbone'], iters=N).")
            for m in mods:
                resolve_module(self.student, m, 'student')
            self.freeze_cfg = dict(modules=list(mods), iters=int(iters))

        self.register_buffer('distill_iter', torch.zeros((), dtype=torch.long))
        self._frozen_now = False
        self._in_train_step = False
        self._adv_cache: Dict[str, tuple] = {}

        for loss in self.losses.values():
            if hasattr(loss, 'setup'):
                loss.setup(self)
        # Discriminators are trained by their own step (gradients all-reduced there), never
        # through the student's backward: keep them out of DDP's gradient bookkeeping.
        self._ddp_params_and_buffers_to_ignore = [
            n for n, _ in list(self.named_parameters()) + list(self.named_buffers())
            if '.discriminator.' in f'.{n}']
        self._disc_synced = False

    # ------------------------------------------------------------------------------------
    # construction helpers
    # ------------------------------------------------------------------------------------
    @staticmethod
    def _prepare_teacher(model: nn.Module, ckpt: Optional[str]) -> nn.Module:
        from mmengine.model import revert_sync_batchnorm
        from mmengine.runner import load_checkpoint
        if ckpt is not None:
            try:
                loaded = load_checkpoint(model, ckpt, map_location='cpu', strict=False,
                                         logger='current')
            except OSError as e:  # urllib's URLError is an OSError too
                if '://' not in str(ckpt):
                    raise
                raise RuntimeError(
                    f'cannot download the teacher checkpoint {ckpt!r} ({e}); download it where '
                    'there is network and set teacher.checkpoint to the local file.') from e
            sd = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
            have = {k[7:] if k.startswith('module.') else k for k in sd}
            want = set(model.state_dict())
            if want and not (want & have):
                raise ValueError(f'teacher checkpoint {ckpt!r} holds none of the teacher '
                                 f"model's weights; check that it belongs to the teacher config.")
            missing = sorted(want - have)
            if missing:
                print_log(f'teacher checkpoint lacks {len(missing)} of {len(want)} entries '
                          f'(e.g. {missing[:3]}); they keep their initial values.',
                          logger='current', level=logging.WARNING)
        else:
            print_log('teacher checkpoint=None: distilling from a randomly initialised teacher.',
                      logger='current', level=logging.WARNING)
        model = revert_sync_batchnorm(model)  # eval-only anyway; SyncBN needs GPUs
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()

    def _load_student_checkpoint(self) -> None:
        if self._student_ckpt is not None:
            from mmengine.runner import load_checkpoint
            load_checkpoint(self.student, self._student_ckpt, map_location='cpu', strict=False,
                            logger='current')

    def init_weights(self) -> None:
        """Initialise student/connectors/losses, then (re)load the student's own checkpoint.

        The Runner calls this before training; without the reload the student's ``init_cfg``
        would overwrite the weights given by ``student=dict(..., checkpoint=...)``. The teacher
        is not touched (it is not a submodule).
        """
        super().init_weights()
        self._load_student_checkpoint()

    def _teacher_input_transform(self) -> Optional[tuple]:
        """Re-normalise student inputs for a teacher with another mean/std or channel order."""
        sp = self.data_preprocessor
        tp = getattr(self.teacher, 'data_preprocessor', None)
        if tp is None or not getattr(sp, '_enable_normalize', False) or \
                not getattr(tp, '_enable_normalize', False):
            return None
        flip = _bgr_to_rgb(sp) != _bgr_to_rgb(tp)
        same = torch.equal(sp.mean, tp.mean) and torch.equal(sp.std, tp.std)
        if same and not flip:
            return None
        return (sp.mean.clone(), sp.std.clone(), tp.mean.clone(), tp.std.clone(), flip)

    def _add_loss(self, name: str, cfg: dict) -> None:
        if 'loss' not in name or '.' in name:
            raise ValueError(f"loss name {name!r} must contain 'loss' and no dots (e.g. "
                             f"'loss_cwd'), so the Runner adds it to the total loss.")
        for key in ('student', 'teacher'):
            if key not in cfg:
                raise KeyError(f"loss {name!r} needs {key}='<tap name>' "
                               f'(taps: {", ".join(self.tap_specs)}).')
            if cfg[key] not in self.tap_specs:
                raise KeyError(f'loss {name!r} maps {key}={cfg[key]!r}, which is not a tap; '
                               f'define it in taps= or use one of: {", ".join(self.tap_specs)}.')
        loss_type = cfg.get('type')
        cls = loss_type if isinstance(loss_type, type) else MODELS.get(loss_type)
        if cls is None:
            raise KeyError(f'loss {name!r}: type {loss_type!r} is not registered; is rtkd '
                           f'imported (custom_imports) and the name spelled right?')
        extras = {}
        for extra in getattr(cls, 'extra_inputs', ()):
            if extra in cfg:
                src = cfg.pop(extra)
                if src not in self.tap_specs:
                    raise KeyError(f'loss {name!r} maps {extra}={src!r}, which is not a tap '
                                   f'(taps: {", ".join(self.tap_specs)}).')
                extras[extra] = src
            elif extra in _SPECIAL_INPUTS:
                extras[extra] = extra
            elif extra in self.tap_specs:
                extras[extra] = extra
            else:
                raise KeyError(f'loss {name!r} ({cls.__name__}) needs the extra input '
                               f"{extra!r}; add {extra}='<tap name>' to its config.")
        self.loss_maps[name] = dict(student=cfg.pop('student'), teacher=cfg.pop('teacher'),
                                    extras=extras)
        self.schedules[name] = build_schedule(cfg.pop('schedule', None))
        self.losses[name] = MODELS.build(cfg)

    # ------------------------------------------------------------------------------------
    # public helpers
    # ------------------------------------------------------------------------------------
    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a registered submodule)."""
        return self._teacher[0]

    @property
    def adversarial_losses(self) -> List[str]:
        """Names of losses that own a discriminator."""
        return [n for n, m in self.losses.items() if hasattr(m, 'discriminator_loss')]

    def resolve_module(self, name: str) -> nn.Module:
        """Return a module by ``'student:<dotted>'`` or ``'teacher:<dotted>'``."""
        side, _, dotted = name.partition(':')
        if side not in ('student', 'teacher') or not _:
            raise ValueError(f"resolve_module expects 'student:<name>' or 'teacher:<name>', "
                             f'got {name!r}.')
        return resolve_module(getattr(self, side), dotted, side)

    def student_state_dict(self) -> dict:
        """State dict of the plain student (keys load into the student's own config)."""
        return self.student.state_dict()

    # ------------------------------------------------------------------------------------
    # nn.Module behaviour
    # ------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> 'Distiller':
        """Switch the student (and connectors, losses); the teacher always stays in eval."""
        super().train(mode)
        self.teacher.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if '_teacher' not in self.__dict__:  # called during construction
            return self
        self.teacher._apply(fn, *args, **kwargs)  # follow the student's device/dtype
        if getattr(self, '_teacher_norm', None) is not None:
            self._teacher_norm = tuple(fn(t) if torch.is_tensor(t) else t
                                       for t in self._teacher_norm)
        return self

    # ------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------
    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """``loss``: task + distillation losses; ``predict``/``tensor``: the student alone."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.student(inputs, data_samples, mode=mode)
        raise RuntimeError(f"Invalid mode {mode!r}; use 'loss', 'predict' or 'tensor'.")

    def _factor(self, name: str, it: int, epoch: int) -> float:
        sched = self.schedules.get(name)
        return 1.0 if sched is None else float(sched(it, epoch))

    def _current_epoch(self) -> int:
        if not any(s is not None and s.stop_epoch is not None for s in self.schedules.values()):
            return 0
        return int(MessageHub.get_current_instance().get_info('epoch', 0) or 0)

    def _apply_freeze(self, it: int) -> None:
        frozen = self.freeze_cfg is not None and it < self.freeze_cfg['iters']
        if frozen and not self._in_train_step:
            raise RuntimeError("freeze_student needs the Distiller's own train_step; under DDP set "
                               "model_wrapper_cfg=dict(type='DistillerDataParallel').")
        self._frozen_now = frozen
        if frozen and self.training:
            for m in self.freeze_cfg['modules']:
                resolve_module(self.student, m, 'student').eval()
        elif self.freeze_cfg is not None and self.training:
            for m in self.freeze_cfg['modules']:
                resolve_module(self.student, m, 'student').train()

    def _frozen_params(self) -> List[nn.Parameter]:
        params = []
        for m in self.freeze_cfg['modules']:
            params += list(resolve_module(self.student, m, 'student').parameters())
        return params

    def _run_teacher(self, inputs: Tensor, data_samples) -> dict:
        teacher = self.teacher
        p = next(teacher.parameters(), None)
        if p is not None and p.device != inputs.device:
            teacher.to(inputs.device)
        x = inputs
        if self._teacher_norm is not None:
            s_mean, s_std, t_mean, t_std, flip = (t.to(x.device) if torch.is_tensor(t) else t
                                                  for t in self._teacher_norm)
            x = x * s_std + s_mean
            if flip:
                x = x.flip(1)
            x = (x - t_mean) / t_std
        tapset = self._taps['teacher']
        with torch.no_grad(), tapset.recording() as rec:
            try:
                teacher(x, data_samples, mode=self.teacher_mode)
            except TeacherDone:
                pass
        return dict(rec)

    def _check_fired(self, side: str, rec: dict) -> None:
        missing = [sp for sp in self._taps[side].specs if sp.name not in rec]
        if missing:
            sp = missing[0]
            raise RuntimeError(f'tap {sp.name!r} ({sp.text!r}) never fired: module '
                               f'{sp.module!r} is not called in the {side} forward; tap a module '
                               f'that runs during training.')

    def _zero_term(self, name: str, ref: Tensor) -> Tensor:
        """0 that touches the loss's and its connectors' parameters (keeps DDP happy)."""
        params = list(self.losses[name].parameters())
        for tap in (self.loss_maps[name]['student'], self.loss_maps[name]['teacher']):
            if tap in self.connectors:
                params += list(self.connectors[tap].parameters())
        zero = ref.new_zeros(())
        for p in params:
            if p.requires_grad:
                zero = zero + p.reshape(-1)[0] * 0
        return zero

    def _shape_error(self, name: str, s_tap: str, t_tap: str, s: Tensor, t: Tensor) -> str:
        fixes = []
        if s.dim() > 1 and t.dim() > 1 and s.shape[1] != t.shape[1]:
            fixes.append(f"dict(type='ConvBNConnector', in_channels={s.shape[1]}, "
                         f'out_channels={t.shape[1]})')
        if s.dim() > 2 and t.dim() > 2 and s.shape[2:] != t.shape[2:]:
            fixes.append(f"dict(type='ResizeConnector', like={t_tap!r})")
        fix = fixes[0] if len(fixes) == 1 else '[' + ', '.join(fixes) + ']'
        return (f'loss {name!r}: student tap {s_tap!r} has shape {tuple(s.shape)} but teacher tap '
                f'{t_tap!r} has shape {tuple(t.shape)}; add connectors=dict({s_tap}={fix}).')

    def loss(self, inputs: Tensor, data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Student task losses plus weighted, scheduled distillation losses.

        Args:
            inputs (Tensor): preprocessed batch (N x 3 x H x W for images).
            data_samples (list): the batch's data samples.

        Returns:
            dict[str, Tensor]: the student's own losses and one entry per distillation loss.
        """
        it = int(self.distill_iter)
        epoch = self._current_epoch()
        self._apply_freeze(it)
        factors = {n: self._factor(n, it, epoch) for n in self.losses}
        active = [n for n in self.losses if factors[n] > 0]

        with self._taps['student'].recording() as s_rec:
            task_losses = self.student.loss(inputs, data_samples)
        s_rec = dict(s_rec)
        losses: Dict[str, Tensor] = dict(task_losses)
        t_rec = {}
        if active:
            self._check_fired('student', s_rec)
            if self._taps['teacher'].specs:  # student-only taps (self-distillation): no teacher
                t_rec = self._run_teacher(inputs, data_samples)
                self._check_fired('teacher', t_rec)
        raw = {**s_rec, **t_rec}
        connected: Dict[str, Tensor] = {}

        def value(tap: str):
            if tap in _SPECIAL_INPUTS:
                return inputs if tap == 'inputs' else data_samples
            if tap not in connected:
                v = raw[tap]
                if tap in self.connectors:
                    v = self.connectors[tap](v, raw)
                connected[tap] = v
            return connected[tap]

        self._adv_cache = {}
        for name, loss_mod in self.losses.items():
            if name in losses:
                raise KeyError(f'distillation loss name {name!r} clashes with a student loss; '
                               f'rename it.')
            if name not in active:
                losses[name] = self._zero_term(name, inputs)
                continue
            m = self.loss_maps[name]
            s, t = value(m['student']), value(m['teacher'])
            extras = {k: value(src) for k, src in m['extras'].items()}
            try:
                val = loss_mod(s, t, **extras)
            except (ValueError, RuntimeError) as e:
                if torch.is_tensor(s) and torch.is_tensor(t) and s.shape != t.shape:
                    raise ValueError(self._shape_error(name, m['student'], m['teacher'], s, t)
                                     + f' ({type(loss_mod).__name__} said: {e})') from e
                raise
            val = val * factors[name]
            if not bool(torch.isfinite(val.detach()).all()):
                raise FloatingPointError(
                    f'distillation loss {name!r} is {val.detach().flatten()[0].item()} at '
                    f'iteration {it}; lower its loss_weight/temperature or the learning rate, or '
                    f'check its taps.')
            losses[name] = val
            if name in self.adversarial_losses:
                self._adv_cache[name] = (
                    s.detach(), t.detach(),
                    {k: (v.detach() if torch.is_tensor(v) else v) for k, v in extras.items()})
        if self.training:
            self.distill_iter += 1
        return losses

    # ------------------------------------------------------------------------------------
    # training step (also used through DistillerDataParallel)
    # ------------------------------------------------------------------------------------
    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict],
                   ddp_model: Optional[nn.Module] = None) -> Dict[str, Tensor]:
        """One iteration: student update, then (adversarial losses) discriminator update.

        Args:
            data (dict | tuple | list): a batch from the dataloader.
            optim_wrapper (OptimWrapper | OptimWrapperDict): one wrapper, or ``student`` and
                ``discriminator`` wrappers (see ``DistillOptimWrapperConstructor``).
            ddp_model (nn.Module | None): the DDP wrapper around ``self`` (its forward syncs
                gradients); set by ``DistillerDataParallel``.

        Returns:
            dict[str, Tensor]: log variables.
        """
        caller = ddp_model if ddp_model is not None else self
        adv = self.adversarial_losses
        if isinstance(optim_wrapper, OptimWrapperDict):
            keys = list(optim_wrapper.keys())
            if 'student' not in keys:
                raise KeyError(f"the optim wrapper dict needs a 'student' entry, has {keys}.")
            s_ow = optim_wrapper['student']
            d_ow = optim_wrapper['discriminator'] if 'discriminator' in keys else None
        else:
            s_ow, d_ow = optim_wrapper, None
        if adv and d_ow is None:
            raise ValueError(f'losses {adv} train a discriminator: set optim_wrapper=dict('
                             f"constructor='DistillOptimWrapperConstructor', student=dict(...), "
                             f'discriminator=dict(...)).')
        self._in_train_step = True
        try:
            with s_ow.optim_context(caller):
                data = self.data_preprocessor(data, True)
                losses = caller._run_forward(data, mode='loss')
        finally:
            self._in_train_step = False
        parsed, log_vars = self.parse_losses(losses)
        s_ow.backward(s_ow.scale_loss(parsed))
        if s_ow.should_update():
            if self._frozen_now:
                for p in self._frozen_params():
                    p.grad = None
            s_ow.step()
            s_ow.zero_grad()
        if adv:
            log_vars.update(self._discriminator_step(d_ow))
        return log_vars

    def _discriminator_step(self, d_ow: OptimWrapper) -> Dict[str, Tensor]:
        distributed = dist.is_available() and dist.is_initialized() and \
            dist.get_world_size() > 1
        if distributed and not self._disc_synced:  # DDP does not broadcast ignored params
            for name in self.adversarial_losses:
                disc = self.losses[name].discriminator
                for t in list(disc.parameters()) + list(disc.buffers()):
                    dist.broadcast(t.data, src=0)
            self._disc_synced = True
        d_ow.zero_grad()  # drop any gradient the student step left on the critics
        if not self._adv_cache:
            return {}
        logs, total = {}, None
        for name, (s, t, extras) in self._adv_cache.items():
            d_loss = self.losses[name].discriminator_loss(s, t, **extras)
            logs[f'{name}.critic'] = d_loss.detach()
            total = d_loss if total is None else total + d_loss
        d_ow.backward(total)
        if distributed:
            world = dist.get_world_size()
            for name in self._adv_cache:
                for p in self.losses[name].discriminator.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad.div_(world)
        d_ow.step()
        d_ow.zero_grad()
        self._adv_cache = {}
        return logs
