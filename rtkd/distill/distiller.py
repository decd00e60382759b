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
teacher (eval mode, no_grad, frozen, cut short once the selected call of every teacher tap fired)
runs on the same batch, re-normalised to what its own data preprocessor would make of the raw
image; each distillation loss gets its two taps (after the connectors) and its extra inputs, and
its output is multiplied by its schedule factor. ``predict``/``tensor`` modes run the student
only, so validation and testing measure the student and never run the teacher.

Non-finite losses: the distiller does not check its losses (a check per loss is a device
synchronisation per loss per iteration); ``NonFiniteLossHook`` (a default hook of
``configs/_base_/default_runtime.py`` and of every recipe) checks every logged loss once per step:
task losses, distillation losses and the critics' ``<loss name>.critic`` (loss names must contain
``'loss'``, so critic names do too). Under DDP the rank whose loss is non-finite raises;
the hook all-reduces its finite flag, so every rank stops before that iteration's checkpoint and
the job exits non-zero.

Self-distillation (no teacher, e.g. BYOT): leave ``teacher`` out and tap only the student, e.g.
``t_logits='student:decode_head.conv_seg'`` as the target of an auxiliary head's logits. A student
tap used as a loss's ``teacher=`` is a *target*: it is detached before its (parameter-free)
connectors and the loss, so the distillation term sends no gradient into the part of the student
that produced it (BYOT's deepest head and features). Student modules that exist only for
self-distillation are named in ``export_exclude`` and left out of the exported student.

``copy.deepcopy`` (EMA/SWA wrappers) copies the student side and shares the teacher, its taps
and the teacher cache; the copy's student taps record into the copy.

The teacher is kept out of ``self._modules``: it is not in ``state_dict()`` (checkpoints hold the
student, connectors and discriminators), not seen by DDP and not switched to train mode by the
Runner. Taps, losses and connectors are validated when the distiller is built; the first step
that runs a loss checks every loss (also those switched off by their schedule at that step,
without side effects) and raises one error listing every shape problem with one consistent fix.

Where things live: :mod:`rtkd.distill.teacher` (the frozen teacher: build, freeze, input
adaptation, truncated forward; shared with ``CohortDistiller`` and the knowledge-adaptation
stage 1), :mod:`rtkd.distill.graph` (loss entries, what a loss is, zero terms, the shape report;
shared with ``CohortDistiller``), :mod:`rtkd.distill.losses.base` (the loss contract: a
``BaseDistillLoss`` gets ``setup(distiller)``, an ``AdversarialDistillLoss`` its critic step; a
third-party loss with the same ``forward`` works too, without either), this module (the
``Distiller``: wiring, ``loss`` and a short ``train_step``).
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import MODELS
from torch import Tensor

from .builder import build_network
from .connectors import build_tap_connectors
from .graph import (SPECIAL_INPUTS, ShapeReport, check_loss_name, describe_shape_error, detached,
                    is_adversarial, loss_class, map_extra_inputs, setup_hook, zero_term)
from .schedules import build_schedule
from .taps import TapSet, TapSpec, resolve_module
from .teacher import (TeacherNotBuilt, adapt_inputs, build_frozen_teacher, input_transform,
                      move_transform, normalize_teacher_spec, run_truncated, teacher_identity)
from .teacher_cache import TeacherCache


class _ExportInfo(nn.Module):
    """Carries ``export_exclude`` into the distiller's checkpoints (``_export_info._extra_state``).

    Tools that see only a checkpoint file (``extract_student.py``, a distiller checkpoint given to
    the plain student config) read it there through :func:`rtkd.distill.export.student_state_dict`.

    Args:
        exclude (list[str]): dotted student module names left out of the exported student.
    """

    def __init__(self, exclude: List[str]) -> None:
        super().__init__()
        self.exclude = list(exclude)

    def get_extra_state(self) -> dict:
        """Returns: dict: ``{'export_exclude': [...]}`` (plain strings: safe-loadable)."""
        return dict(export_exclude=list(self.exclude))

    def set_extra_state(self, state: Any) -> None:
        """Keep the recipe's list (a resumed checkpoint's list is informational)."""


@MODELS.register_module()
class Distiller(BaseModel):
    """Offline knowledge distillation (or self-distillation, no teacher) for any OpenMMLab model
    with a ``loss()`` method.

    Args:
        student (str | dict): student spec: config path, ``'pkg::path'``, a model dict, or
            ``dict(config=..., checkpoint=..., cfg_options=..., scope=...)``. Its optional
            ``checkpoint`` initialises the student (loaded after ``init_weights``).
        teacher (str | dict | None): teacher spec, same forms; ``checkpoint`` (local path or
            URL, loaded on CPU) is required (pass ``checkpoint=None`` explicitly to distil from a
            randomly initialised teacher). ``cache=dict(dir=DIR)`` reads the teacher taps from
            a teacher-output cache (:mod:`rtkd.distill.teacher_cache`) instead of building
            and running the teacher. None (default) for self-distillation: then every tap must
            be a ``student:`` tap (and a teacher given while no tap reads it is an error too).
        taps (dict[str, str]): tap name ->
            ``'<student|teacher>:<dotted.module>[@<call>|@*][#in|#out][i]'`` (``@<call>`` picks
            one call of a module that runs several times per forward, ``@*`` all of them; see
            :mod:`rtkd.distill.taps`).
        losses (dict[str, dict]): loss name (must contain ``'loss'``) -> loss config with the
            extra keys ``student`` / ``teacher`` (tap names), optional ``schedule`` (see
            :class:`~rtkd.distill.schedules.LossSchedule`) and, for each name in the loss class's
            ``extra_inputs`` that is not ``'inputs'``/``'data_samples'``, the tap it reads.
            The loss class follows :mod:`rtkd.distill.losses.base` (``BaseDistillLoss``).
        connectors (dict[str, dict | list[dict]] | None): tap name -> connector config (a list
            chains several). Applied to the tap before any loss sees it.
        freeze_student (dict | None): ``dict(modules=['backbone'], iters=N, norm_eval=True)``:
            the named student parts get no updates for the first N iterations, and with
            ``norm_eval`` (default) their BN layers stay in eval mode meanwhile.
            ``modules=['']`` names the whole student, so only connectors (and critics) learn:
            with ``norm_eval=False`` (BN statistics keep updating) this is the official OFD
            recipe's first epoch, which steps only the connectors' optimizer.
        export_exclude (Sequence[str] | None): dotted names of student modules that exist only
            for self-distillation (e.g. ``'auxiliary_head.2'``, a shallow head the plain student
            config does not have). They are trained and kept in the distiller's checkpoints
            (the list is recorded there too) but left out of the exported student
            (:meth:`student_state_dict`, ``StudentCheckpointHook``, ``extract_student.py``, a
            distiller checkpoint loaded into the plain student config).
        teacher_mode (str): mode used to run the teacher (``'tensor'``: backbone + heads
            without post-processing or losses).
        teacher_early_stop (bool): stop the teacher forward once the selected call of every
            teacher tap fired (the first forward runs to its end to count calls).
        data_preprocessor (dict | None): defaults to the student's own data preprocessor.
        init_cfg (dict | None): mmengine init config for the distiller.
    """

    def __init__(self,
                 student: Union[str, dict],
                 teacher: Optional[Union[str, dict]] = None,
                 taps: Optional[Dict[str, str]] = None,
                 losses: Optional[Dict[str, dict]] = None,
                 connectors: Optional[Dict[str, Union[dict, list]]] = None,
                 freeze_student: Optional[dict] = None,
                 teacher_mode: str = 'tensor',
                 teacher_early_stop: bool = True,
                 export_exclude: Optional[Sequence[str]] = None,
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
        self.tap_specs: Dict[str, TapSpec] = {n: TapSpec.parse(n, t) for n, t in taps.items()}
        by_side = {
            s: [sp for sp in self.tap_specs.values() if sp.side == s]
            for s in ('student', 'teacher')
        }
        self._teacher_specs = by_side['teacher']
        if teacher is None and self._teacher_specs:
            sp = self._teacher_specs[0]
            raise ValueError(f'tap {sp.name!r} ({sp.text!r}) reads the teacher but no teacher is '
                             f"given: add teacher=dict(config=..., checkpoint=...), or tap the "
                             f"student ('student:<module>') for self-distillation.")
        if teacher is not None and not self._teacher_specs:
            raise ValueError('a teacher is given but no tap reads it (every tap is '
                             "'student:...'): remove teacher=... for self-distillation, or add "
                             "a 'teacher:<module>' tap.")
        teacher_spec = None
        cache_cfg = None
        if teacher is not None:
            teacher_spec = normalize_teacher_spec(teacher, 'Distiller')
            cache_cfg = teacher_spec.pop('cache', None)
        self._teacher_spec = teacher_spec
        self.teacher_mode = teacher_mode
        self.teacher_cache: Optional[TeacherCache] = None
        self._teacher: List[nn.Module] = []
        self._teacher_norm = None
        self.teacher_scope = None
        if teacher_spec is not None and cache_cfg is None:
            self._teacher = [self._build_teacher()]
            self._teacher_norm = input_transform(self.data_preprocessor,
                                                 getattr(self.teacher, 'data_preprocessor', None))

        # --- taps -----------------------------------------------------------------------
        self._taps = {'student': TapSet(self.student, by_side['student'], 'student')}
        if self._teacher:
            self._taps['teacher'] = TapSet(
                self.teacher, by_side['teacher'], 'teacher', stop_when_done=teacher_early_stop)
        elif teacher_spec is not None:
            self.teacher_cache = self._open_cache(cache_cfg, by_side['teacher'])

        # --- losses -----------------------------------------------------------------------
        self.losses = nn.ModuleDict()
        self.loss_maps: Dict[str, dict] = {}
        self._target_taps = set()  # student taps used as a loss's teacher=: detached targets
        self.schedules: Dict[str, Any] = {}
        for name, cfg in losses.items():
            self._add_loss(name, dict(cfg))

        # --- connectors ---------------------------------------------------------------------
        used = {m[k] for m in self.loss_maps.values() for k in ('student', 'teacher')}
        used |= {v for m in self.loss_maps.values() for v in m['extras'].values()}
        frozen = {
            t:
            'is the detached target (teacher=) of a loss and would learn nothing; put '
            'learned connectors on the student= tap'
            for t in self._target_taps
        }
        frozen.update({
            sp.name:
            'belongs to the frozen teacher; put learned connectors on the '
            'student tap'
            for sp in by_side['teacher']
        })
        self.connectors = build_tap_connectors(connectors, list(self.tap_specs), used, frozen)

        # --- export: student parts trained for self-distillation only ----------------------
        self.export_exclude: List[str] = []
        for name in export_exclude or ():
            if not isinstance(name, str) or not name or name.startswith('student.'):
                raise ValueError(f'export_exclude entries are dotted student module names such '
                                 f"as 'auxiliary_head.2' (no 'student.' prefix), got {name!r}.")
            resolve_module(self.student, name, 'student')  # fails with the close names
            self.export_exclude.append(name)
        if self.export_exclude:  # recorded in checkpoints, for tools that see only the file
            self._export_info = _ExportInfo(self.export_exclude)

        # --- freezing ------------------------------------------------------------------------
        self.freeze_cfg = None
        if freeze_student:
            ok = isinstance(freeze_student, dict)
            mods = freeze_student.get('modules') if ok else None
            iters = freeze_student.get('iters') if ok else None
            extra = set(freeze_student) - {'modules', 'iters', 'norm_eval'} if ok else set()
            if not mods or iters is None or extra or isinstance(mods, str):
                raise ValueError("freeze_student must be dict(modules=['backbone'], iters=N[, "
                                 f'norm_eval=True]), got {freeze_student!r}.')
            for m in mods:
                resolve_module(self.student, m, 'student')
            self.freeze_cfg = dict(
                modules=list(mods),
                iters=int(iters),
                norm_eval=bool(freeze_student.get('norm_eval', True)))

        self.register_buffer('distill_iter', torch.zeros((), dtype=torch.long))
        self._frozen_now = False
        self._in_train_step = False
        self._adv_cache: Dict[str, tuple] = {}

        self._graph_checked = False  # the first loss() checks every loss (ShapeReport)
        self._setup_losses()
        # Discriminators are trained by their own step (gradients all-reduced there), never
        # through the student's backward: keep them out of DDP's gradient bookkeeping.
        self._ddp_params_and_buffers_to_ignore = [
            f'losses.{name}.discriminator.{n}' for name in self.adversarial_losses
            for n, _ in list(self.losses[name].discriminator.named_parameters()) +
            list(self.losses[name].discriminator.named_buffers())
        ]
        self._disc_synced = False

    # ------------------------------------------------------------------------------------
    # construction helpers
    # ------------------------------------------------------------------------------------
    def _build_teacher(self) -> nn.Module:
        teacher, self.teacher_scope = build_frozen_teacher(self._teacher_spec)
        return teacher

    def _setup_losses(self) -> None:
        """Call every BaseDistillLoss's ``setup(self)`` (other losses have none).

        A loss that reads the teacher while its targets come from a teacher cache (e.g. OFD's
        margin from a teacher BN) gets the teacher built for its setup only.
        """
        for loss in self.losses.values():
            setup = setup_hook(loss)
            if setup is None:
                continue
            try:
                setup(self)
            except TeacherNotBuilt:
                if self._teacher_spec is None:
                    raise
                self._teacher = [self._build_teacher()]
                try:
                    setup(self)
                finally:
                    self._teacher = []

    def _open_cache(self, cache_cfg, specs: List[TapSpec]) -> TeacherCache:
        """Open a teacher cache and check that it belongs to this teacher and these taps."""
        if isinstance(cache_cfg, str):
            cache_cfg = dict(dir=cache_cfg)
        if not isinstance(cache_cfg, dict) or 'dir' not in cache_cfg:
            raise ValueError("teacher cache must be cache=dict(dir='<folder made by "
                             "tools/distill/cache_teacher.py>').")
        unknown = set(cache_cfg) - {'dir', 'check_teacher'}
        if unknown:
            raise ValueError(f'teacher cache: unknown keys {sorted(unknown)}; use '
                             'cache=dict(dir=..., check_teacher=True).')
        if not specs:
            raise ValueError('teacher cache given but no teacher taps: remove cache=... .')
        expected = dict(taps={sp.name: sp.text for sp in specs})
        if cache_cfg.get('check_teacher', True):
            ident = teacher_identity(self._teacher_spec)
            expected.update(
                teacher_config=ident['teacher_config'],
                teacher_checkpoint_sha256=ident['teacher_checkpoint_sha256'])
        cache = TeacherCache(cache_cfg['dir'], expected)
        print_log(
            f"teacher: {cache.mode} teacher cache {cache.folder} (teacher not built; "
            f"taps {', '.join(expected['taps'])})",
            logger='current')
        return cache

    def _load_student_checkpoint(self) -> None:
        if self._student_ckpt is not None:
            from mmengine.runner import load_checkpoint
            load_checkpoint(
                self.student,
                self._student_ckpt,
                map_location='cpu',
                strict=False,
                logger='current')

    def init_weights(self) -> None:
        """Initialise student/connectors/losses, then (re)load the student's own checkpoint.

        The Runner calls this before training; without the reload the student's ``init_cfg``
        would overwrite the weights given by ``student=dict(..., checkpoint=...)``. The teacher
        is not touched (it is not a submodule).
        """
        super().init_weights()
        self._load_student_checkpoint()

    def _add_loss(self, name: str, cfg: dict) -> None:
        check_loss_name(name)
        for key in ('student', 'teacher'):
            if key not in cfg:
                raise KeyError(f"loss {name!r} needs {key}='<tap name>' "
                               f'(taps: {", ".join(self.tap_specs)}).')
            if cfg[key] not in self.tap_specs:
                raise KeyError(f'loss {name!r} maps {key}={cfg[key]!r}, which is not a tap; '
                               f'define it in taps= or use one of: {", ".join(self.tap_specs)}.')
        extras = map_extra_inputs(name, loss_class(name, cfg.get('type')), cfg,
                                  list(self.tap_specs))
        self.loss_maps[name] = dict(
            student=cfg.pop('student'), teacher=cfg.pop('teacher'), extras=extras)
        if self.tap_specs[self.loss_maps[name]['teacher']].side == 'student':
            self._target_taps.add(self.loss_maps[name]['teacher'])
        self.schedules[name] = build_schedule(cfg.pop('schedule', None))
        self.losses[name] = MODELS.build(cfg)

    # ------------------------------------------------------------------------------------
    # public helpers
    # ------------------------------------------------------------------------------------
    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a registered submodule)."""
        if not self._teacher and self._teacher_spec is None:
            raise TeacherNotBuilt('there is no teacher: this Distiller distils the student into '
                                  'itself (student-only taps, no teacher=...).')
        if not self._teacher:
            raise TeacherNotBuilt(
                'the teacher is not built: its targets come from the teacher cache '
                f'{self.teacher_cache.folder if self.teacher_cache else "?"!r}; remove '
                'teacher.cache to use the live teacher.')
        return self._teacher[0]

    @property
    def adversarial_losses(self) -> List[str]:
        """Names of losses that own a discriminator."""
        return [n for n, m in self.losses.items() if is_adversarial(m)]

    def resolve_module(self, name: str) -> nn.Module:
        """Return a module by ``'student:<dotted>'`` or ``'teacher:<dotted>'``."""
        side, _, dotted = name.partition(':')
        if side not in ('student', 'teacher') or not _:
            raise ValueError(f"resolve_module expects 'student:<name>' or 'teacher:<name>', "
                             f'got {name!r}.')
        return resolve_module(getattr(self, side), dotted, side)

    def student_state_dict(self) -> dict:
        """State dict of the plain student (keys load into the student's own config).

        Student modules named in ``export_exclude`` (self-distillation only) are left out.
        """
        from .export import drop_modules
        return drop_modules(self.student.state_dict(), self.export_exclude)

    # ------------------------------------------------------------------------------------
    # nn.Module behaviour
    # ------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> 'Distiller':
        """Switch the student (and connectors, losses); the teacher always stays in eval."""
        super().train(mode)
        if self._teacher:
            self.teacher.eval()
        return self

    def __deepcopy__(self, memo: dict) -> 'Distiller':
        """Copy the student side (EMA/SWA wrappers deep-copy the model); share the teacher.

        The frozen teacher, its taps and the teacher cache are shared with the copy, not
        copied. The student taps' hooks are callable objects that hold their TapSet (see
        :mod:`rtkd.distill.taps`), so the copy's student modules record into the copy's own.

        Args:
            memo (dict): ``copy.deepcopy``'s memo.

        Returns:
            Distiller: the copy.
        """
        shared = list(self.__dict__.get('_teacher') or [])
        shared += [
            self.__dict__.get('_taps', {}).get('teacher'),
            self.__dict__.get('teacher_cache')
        ]
        for obj in shared:
            if obj is not None:
                memo[id(obj)] = obj
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if not self.__dict__.get('_teacher'):  # during construction, or a cached teacher
            return self
        self.teacher._apply(fn, *args, **kwargs)  # follow the student's device/dtype
        self._teacher_norm = move_transform(getattr(self, '_teacher_norm', None), fn)
        return self

    # ------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------
    def forward(self, inputs: Tensor, data_samples: Optional[list] = None, mode: str = 'tensor'):
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
        if frozen and self.training and self.freeze_cfg['norm_eval']:
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
        """The live teacher's taps for a student-preprocessed batch (truncated forward)."""
        return run_truncated(self.teacher, self._taps['teacher'],
                             adapt_inputs(self._teacher_norm, inputs), data_samples,
                             self.teacher_mode)

    def teacher_targets(self, inputs: Tensor, data_samples, iteration: int) -> dict:
        """The teacher taps for a batch: from the live teacher or from the teacher cache.

        Args:
            inputs (Tensor): the preprocessed batch (student normalisation).
            data_samples (list): its data samples (the cache reads their geometry meta).
            iteration (int): training iteration (the exact cache's key).

        Returns:
            dict[str, Tensor]: teacher tap name -> value.
        """
        if self.teacher_cache is None:
            rec = self._run_teacher(inputs, data_samples)
            self._check_fired('teacher', rec)
            return rec
        names = [sp.name for sp in self._teacher_specs]
        if self.teacher_cache.mode == 'exact':
            from mmengine.dist import get_rank
            if self.training and not getattr(self, '_cache_length_checked', False):
                # fail on the first step, not after hours, when the run is longer than the cache
                self.teacher_cache.check_length(
                    MessageHub.get_current_instance().get_info('max_iters'))
                self._cache_length_checked = True
            return self.teacher_cache.exact(names, iteration, get_rank(), inputs, data_samples)
        return self.teacher_cache.geometric(names, data_samples, tuple(inputs.shape[-2:]),
                                            inputs.device)

    def summary(self, records: Optional[dict] = None) -> str:
        """What this distiller does, in a few lines (logged once, on the first training step).

        Args:
            records (dict | None): tap name -> recorded value, for the shapes.

        Returns:
            str: teacher source, taps (with shapes), connectors, losses (weights, schedules).
        """

        def shape(v):
            if torch.is_tensor(v):
                return 'x'.join(str(d) for d in v.shape)
            if isinstance(v, (list, tuple)):
                return f'{len(v)} x [' + (shape(v[0]) if v else '') + ']'
            return type(v).__name__

        records = records or {}
        spec = self._teacher_spec
        if spec is None:
            source = 'none (self-distillation: student-only taps, targets detached)'
        elif self.teacher_cache is not None:
            source = f'teacher cache {self.teacher_cache.folder} ({self.teacher_cache.mode})'
        else:
            source = f"{spec.get('config', 'model dict')} + {spec.get('checkpoint')}"
        lines = [f'Distiller: teacher {source}']
        for name, sp in self.tap_specs.items():
            lines.append(f'  tap {name} = {sp.text}' +
                         (f' -> {shape(records[name])}' if name in records else ''))
        for tap, chain in self.connectors.items():
            lines.append(f'  connector on {tap}: ' +
                         ' -> '.join(type(m).__name__ for m in chain.children()))
        for name, mod in self.losses.items():
            m = self.loss_maps[name]
            sched = self.schedules.get(name)
            lines.append(f"  loss {name} = {type(mod).__name__}({m['student']}, {m['teacher']}), "
                         f"weight {getattr(mod, 'loss_weight', '?')}" +
                         (f', schedule {sched!r}' if sched is not None else ''))
        if self.export_exclude:
            lines.append(f'  left out of the exported student: {", ".join(self.export_exclude)}')
        if self.freeze_cfg:
            lines.append(f"  student {self.freeze_cfg['modules']} frozen for "
                         f"{self.freeze_cfg['iters']} iterations")
        return '\n'.join(lines)

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
        return zero_term(params, ref)

    def _tap_values(self, raw: dict, inputs: Tensor, data_samples) -> Callable:
        """``value(tap, target=False)``: a tap after its connectors (each computed once).

        A student tap used as a loss's ``teacher=`` is a target: detached before its connectors,
        so no gradient flows back into the student through it.
        """
        connected: Dict[tuple, Any] = {}

        def value(tap: str, target: bool = False):
            if tap in SPECIAL_INPUTS:
                return inputs if tap == 'inputs' else data_samples
            target = target and self.tap_specs[tap].side == 'student'
            if (tap, target) not in connected:
                v = detached(raw[tap]) if target else raw[tap]
                if tap in self.connectors:
                    v = self.connectors[tap](v, raw)
                connected[(tap, target)] = v
            return connected[(tap, target)]

        return value

    def _evaluate(self, name: str, value: Callable, report: ShapeReport) -> Optional[tuple]:
        """Run one loss on its taps; a shape problem goes to ``report`` (returns None).

        Returns:
            tuple | None: ``(loss value, student value, teacher value, extras)``.
        """
        m, loss_mod = self.loss_maps[name], self.losses[name]
        s, t = value(m['student']), value(m['teacher'], target=True)
        extras = {k: value(src) for k, src in m['extras'].items()}
        try:
            return loss_mod(s, t, **extras), s, t, extras
        except (ValueError, RuntimeError) as e:
            if not (torch.is_tensor(s) and torch.is_tensor(t) and s.shape != t.shape):
                raise
            s_sp, t_sp = self.tap_specs[m['student']], self.tap_specs[m['teacher']]
            logits = all(sp.module.endswith('conv_seg') and not sp.use_input for sp in (s_sp, t_sp))
            classes = getattr(getattr(self.student, 'decode_head', None), 'num_classes', None)
            describe_shape_error(
                report,
                name,
                m['student'],
                m['teacher'],
                s,
                t,
                logits=logits,
                student_classes=classes,
                loss_said=f'{type(loss_mod).__name__} said: {e}')
            report.cause = report.cause or e
            return None

    def _probe(self, names: List[str], value: Callable, report: ShapeReport,
               inputs: Tensor) -> None:
        """Check switched-off losses once (first step) without changing anything.

        Runs them under ``no_grad`` with the RNG forked; the buffers of the losses and of their
        connectors (BN statistics, memory banks) are put back afterwards.
        """
        mods = [self.losses[n] for n in names]
        mods += [
            self.connectors[tap] for n in names
            for tap in (self.loss_maps[n]['student'], self.loss_maps[n]['teacher'],
                        *self.loss_maps[n]['extras'].values()) if tap in self.connectors
        ]
        saved = [(b, b.detach().clone()) for mod in mods for b in mod.buffers()]
        devices = [inputs.device.index or 0] if inputs.is_cuda else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                for name in names:
                    self._evaluate(name, value, report)
        finally:
            with torch.no_grad():
                for b, v in saved:
                    b.copy_(v)

    def loss(self, inputs: Tensor, data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Student task losses plus weighted, scheduled distillation losses.

        The first call that runs a loss checks every loss, also those their schedules switch
        off at that step, and raises one ``ValueError`` listing every shape problem
        (:class:`~rtkd.distill.graph.ShapeReport`).

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
        # the first step that runs a loss also checks the switched-off ones (shape report);
        # a step where every loss is off runs neither the teacher nor any check
        probe = [n for n in self.losses if n not in active] \
            if active and not self._graph_checked else []

        with self._taps['student'].recording() as s_rec:
            task_losses = self.student.loss(inputs, data_samples)
        losses: Dict[str, Tensor] = dict(task_losses)
        t_rec = {}
        if active:
            self._check_fired('student', s_rec)
            if self._teacher_specs:  # student-only taps (self-distillation): no teacher
                t_rec = self.teacher_targets(inputs, data_samples, it)
        raw = {**s_rec, **t_rec}
        if self.training and not getattr(self, '_summary_logged', False):
            self._summary_logged = True
            print_log(self.summary(raw), logger='current')
        value = self._tap_values(raw, inputs, data_samples)

        report = ShapeReport({n: sp.text for n, sp in self.tap_specs.items()})
        self._adv_cache = {}
        for name in self.losses:
            if name in losses:
                raise KeyError(f'distillation loss name {name!r} clashes with a student loss; '
                               f'rename it.')
            if name not in active:
                losses[name] = self._zero_term(name, inputs)
                continue
            out = self._evaluate(name, value, report)
            if out is None:
                continue
            val, s, t, extras = out
            # no finiteness check here (a device sync per loss): NonFiniteLossHook checks
            # every logged loss, critics included, once per step (module docstring)
            losses[name] = val * factors[name]
            if name in self.adversarial_losses:
                self._adv_cache[name] = (s.detach(), t.detach(), {
                    k: detached(v)
                    for k, v in extras.items()
                })
        if probe:
            self._probe(probe, value, report, inputs)
        report.raise_if_any()
        self._graph_checked = self._graph_checked or bool(active)
        if self.training:
            self.distill_iter += 1
        return losses

    # ------------------------------------------------------------------------------------
    # training step (also used through DistillerDataParallel)
    # ------------------------------------------------------------------------------------
    def train_step(self,
                   data: Union[dict, tuple, list],
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
        s_ow, d_ow = self._split_wrappers(optim_wrapper)
        if self.adversarial_losses:
            self._sync_discriminators()  # before their first use, the generator loss
        self._in_train_step = True
        try:
            with s_ow.optim_context(caller):
                data = self.data_preprocessor(data, True)
                losses = caller._run_forward(data, mode='loss')
        finally:
            self._in_train_step = False
        parsed, log_vars = self.parse_losses(losses)
        self._student_update(s_ow, parsed)
        if self.adversarial_losses:
            log_vars.update(self._discriminator_step(d_ow))
        return log_vars

    def _split_wrappers(self, optim_wrapper) -> tuple:
        """``(student wrapper, discriminator wrapper or None)``; checks what the losses need."""
        if isinstance(optim_wrapper, OptimWrapperDict):
            keys = list(optim_wrapper.keys())
            if 'student' not in keys:
                raise KeyError(f"the optim wrapper dict needs a 'student' entry, has {keys}.")
            s_ow = optim_wrapper['student']
            d_ow = optim_wrapper['discriminator'] if 'discriminator' in keys else None
        else:
            s_ow, d_ow = optim_wrapper, None
        adv = self.adversarial_losses
        if adv and d_ow is None:
            raise ValueError(f'losses {adv} train a discriminator: set optim_wrapper=dict('
                             f"constructor='DistillOptimWrapperConstructor', student=dict(...), "
                             f'discriminator=dict(...)).')
        return s_ow, d_ow

    def _student_update(self, s_ow: OptimWrapper, parsed: Tensor) -> None:
        """Backward of the total loss and (when due) a step, leaving the critics' grads alone.

        The student's backward must neither add to nor drop the critics' (accumulated)
        gradients: they are set aside and put back afterwards. Frozen student parts
        (``freeze_student``) get no update.
        """
        critic_params = self._discriminator_params()
        critic_grads = [p.grad for p in critic_params]
        for p in critic_params:
            p.grad = None
        s_ow.backward(s_ow.scale_loss(parsed))
        for p, g in zip(critic_params, critic_grads):
            p.grad = g
        if s_ow.should_update():
            if self._frozen_now:
                for p in self._frozen_params():
                    p.grad = None
            s_ow.step()
            s_ow.zero_grad()

    @staticmethod
    def _distributed() -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def _discriminator_params(self) -> List[nn.Parameter]:
        return [
            p for name in self.adversarial_losses
            for p in self.losses[name].discriminator.parameters()
        ]

    def _sync_discriminators(self) -> None:
        """Broadcast the critics from rank 0 once, before their first use.

        DDP broadcasts the registered parameters when it wraps the model but skips the ignored
        ones (``_ddp_params_and_buffers_to_ignore``: the critics), so ranks would otherwise
        start from their own random critics. Called at the start of the first ``train_step``
        (after any resume), i.e. before the first generator loss and the first critic step.
        """
        if self._disc_synced or not self._distributed():
            return
        for name in self.adversarial_losses:
            disc = self.losses[name].discriminator
            for t in list(disc.parameters()) + list(disc.buffers()):
                dist.broadcast(t.data, src=0)
        self._disc_synced = True

    def _discriminator_step(self, d_ow: OptimWrapper) -> Dict[str, Tensor]:
        """Critic loss and backward; an update only when ``d_ow.should_update()``.

        Honours gradient accumulation (``accumulative_counts`` of the discriminator wrapper):
        the loss is scaled by ``d_ow.scale_loss``, gradients accumulate over the micro-steps and
        are averaged over the ranks once, before the update.

        Args:
            d_ow (OptimWrapper): the discriminator's optim wrapper.

        Returns:
            dict[str, Tensor]: ``'<loss name>.critic'`` -> critic loss (detached).
        """
        if not self._adv_cache:
            return {}
        logs, total = {}, None
        for name, (s, t, extras) in self._adv_cache.items():
            d_loss = self.losses[name].discriminator_loss(s, t, **extras)
            logs[f'{name}.critic'] = d_loss.detach()
            total = d_loss if total is None else total + d_loss
        self._adv_cache = {}
        d_ow.backward(d_ow.scale_loss(total))
        if d_ow.should_update():
            if self._distributed():
                world = dist.get_world_size()
                for p in self._discriminator_params():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad.div_(world)
            d_ow.step()
            d_ow.zero_grad()
        return logs
