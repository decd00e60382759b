"""Online distillation: a cohort of networks trained together in one Runner (deep mutual learning,
trainable teacher), declared in one config dict like the offline :class:`Distiller`.

Deep mutual learning (Zhang, Xiang, Hospedales, Lu, "Deep Mutual Learning", CVPR 2018,
arXiv 1706.00384): ``K`` networks learn together; member ``i`` minimises

.. math::
    L_i = L_{task}(\\theta_i) + \\frac{1}{K-1} \\sum_{j \\ne i}
          \\mathrm{KL}\\big(p_j \\,\\|\\, p_i\\big),\\qquad p = \\mathrm{softmax}(z / T)

with the other members' predictions ``p_j`` treated as constants (detached). A *trainable
teacher* is the same mechanism with members of different sizes: the teacher keeps its task loss
on and learns while it teaches (``student='<s tap>', teacher='<t tap>'``: one direction only).

Recipe (two Fast-SCNNs, mutual)::

    model = dict(
        type='CohortDistiller',
        members=dict(a='configs/fast_scnn/<cfg>.py',            # any Distiller student spec:
                     b='configs/fast_scnn/<cfg>.py'),           # path, 'pkg::path', dict(config=,
                                                                # checkpoint=, cfg_options=), model
        taps=dict(a_logits='a:decode_head.conv_seg',            # '<member>:<dotted.module>...'
                  b_logits='b:decode_head.conv_seg'),           # (rtkd.distill.taps syntax)
        losses=dict(loss_dml=dict(type='HintonKD', tau=1.0, loss_weight=1.0,
                                  mutual=['a_logits', 'b_logits'])),
        eval_member='a')
    optim_wrapper = dict(constructor='CohortOptimWrapperConstructor',   # one per member
                         a=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.045)),
                         b=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.045)))
    model_wrapper_cfg = dict(type='DistillerDataParallel')             # DDP: our train_step

Loss entries (any registered, parameter-free rtkd loss ``forward(student, teacher, **extra)``):

* ``student='<tap>', teacher='<tap>'``: the member of the ``student`` tap learns from the member
  of the ``teacher`` tap (its tap is detached); logged as ``'<learner>.<loss name>'``.
* ``mutual=['<tap>', '<tap>', ...]`` (taps of two or more members): every listed member learns
  from the mean over the others (DML), i.e. ``K (K-1)`` directed terms each weighted
  ``1 / (K-1)``; logged as ``'<member>.<loss name>'`` for every member.
* optional ``schedule=dict(...)`` (:mod:`rtkd.distill.schedules`), and taps for the loss's
  ``extra_inputs`` as in the Distiller.

Every member computes its own task losses with its own ``loss()``, logged as
``'<member>.<name>'`` (e.g. ``'a.decode.loss_ce'``); each member's total (task + the
distillation terms it learns from) is logged as ``'<member>.loss'``. ``predict``/``tensor`` modes
(validation, ``mim test``) run ``eval_member`` only; ``--cfg-options model.eval_member=b`` tests
another member from the same checkpoint. Checkpoints hold every member (``members.<name>.*``),
the connectors and the schedule counter; the optimizer states of all members are saved and
resumed by the Runner (``OptimWrapperDict``). ``tools/model_converters/extract_student.py CKPT
OUT --member <name>`` writes one member as a plain checkpoint of its own config.

The cohort's data preprocessor is ``eval_member``'s; a member whose own preprocessor normalises
differently (mean/std, channel order) gets the batch re-normalised to its own convention (the
teacher-input transform of :mod:`rtkd.distill.teacher`). Members see the same augmented batch.

Deviations from the paper / official code (TensorFlow,
github.com/YingZhangDUT/Deep-Mutual-Learning):

* Update order: the paper's Algorithm 1 updates the members one after another, recomputing the
  predictions between the updates, and the official ``train_models.py`` runs one ``sess.run`` per
  member (a fresh forward of all members, and a fresh batch from the input queue, for each
  member's update). Here all members are updated from one forward of one batch (one backward of
  the sum of the members' losses: the targets are detached, so each member gets exactly the
  gradient of its own loss, as the official per-member ``var_list`` does). This keeps one
  forward/backward per iteration under DDP and saves ``K-1`` forwards of every member per
  iteration.
* ``mutual=`` with ``K > 2`` members weights each KL by ``1 / (K-1)`` (the paper's mean); the
  official code sums the ``K-1`` terms (identical for ``K = 2``). Use ``loss_weight=K-1`` for the
  official sum.
* The KL is computed by an rtkd loss: for segmentation ``HintonKD`` averages the per-pixel KL over
  all ``N*H*W`` pixels (the paper's classification loss averages over samples), with an optional
  temperature (the paper: ``T = 1``) and the ``T^2`` factor; log-softmax instead of the official
  ``log(1e-8 + p_j / (p_i + 1e-8))``.
* Members may be initialised from checkpoints (a pretrained, trainable teacher); the paper trains
  all members from scratch (or from ImageNet weights).

The cohort itself is what the Runner trains, validates and saves: members are registered
submodules (``self.members``), so DDP synchronises all of them without
``find_unused_parameters`` as long as every member uses all its parameters in its ``loss()``
(a loss switched off by its schedule still touches its learner-side connectors).
"""
from __future__ import annotations

import re
from contextlib import ExitStack
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel, ModuleDict
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import MODELS
from torch import Tensor

from .builder import build_network
from .checkpoint_checks import check_checkpoint_match
from .connectors import build_tap_connectors
from .graph import (SPECIAL_INPUTS, check_loss_name, detached, is_adversarial, loss_class,
                    map_extra_inputs, zero_term)
from .schedules import build_schedule
from .taps import TapSet, TapSpec
from .teacher import adapt_inputs, input_transform

_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


@MODELS.register_module()
class CohortDistiller(BaseModel):
    """Online distillation: two or more networks (members) trained together, each with its own
    task loss, its own optimizer and the distillation terms it learns from.

    See the module docstring for the recipe, the loss entries and the deviations from DML.

    Args:
        members (dict[str, str | dict]): member name (a Python identifier) -> network spec, in
            the forms the Distiller's ``student`` accepts (config path, ``'pkg::path'``,
            ``dict(config=..., checkpoint=..., cfg_options=..., scope=...)``, a model dict).
            An optional ``checkpoint`` initialises that member (loaded after ``init_weights``,
            checked to match its architecture).
        taps (dict[str, str]): tap name -> ``'<member>:<dotted.module>[@<call>|@*][#in|#out][i]'``.
        losses (dict[str, dict]): loss name (contains ``'loss'``, no dots) -> loss config with
            either ``student``/``teacher`` (learner tap / target tap) or ``mutual`` (a list of
            taps), optional ``schedule`` and extra-input taps.
        eval_member (str): the member that validation, testing and ``predict`` run.
        connectors (dict[str, dict | list[dict]] | None): tap name -> connector config(s),
            applied before any loss sees the tap; trained with the tap's member.
        data_preprocessor (dict | None): defaults to ``eval_member``'s data preprocessor.
        init_cfg (dict | None): mmengine init config.
    """

    def __init__(self,
                 members: Dict[str, Union[str, dict]],
                 taps: Dict[str, str],
                 losses: Dict[str, dict],
                 eval_member: str,
                 connectors: Optional[Dict[str, Union[dict, list]]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(members, dict) or len(members) < 2:
            raise ValueError('CohortDistiller needs members=dict(<name>=<config or spec>, ...) '
                             'with at least two members.')
        for name in members:
            if not isinstance(name, str) or not _NAME_RE.match(name) or \
                    name in SPECIAL_INPUTS or 'loss' in name:
                raise ValueError(f'member name {name!r} is not valid; use a Python identifier '
                                 "without dots and without 'loss' (e.g. 'a', 'student', "
                                 "'teacher').")
        if eval_member not in members:
            raise KeyError(f'eval_member={eval_member!r} is not a member; set it to one of: '
                           f'{", ".join(members)}.')
        if not isinstance(taps, dict) or not taps:
            raise ValueError("CohortDistiller needs taps=dict(<name>='<member>:<module>', ...).")
        if not isinstance(losses, dict) or not losses:
            raise ValueError('CohortDistiller needs losses=dict(loss_<name>=dict(type=..., '
                             "mutual=['<tap>', '<tap>']) or student='<tap>', teacher='<tap>').")
        self.eval_member = eval_member

        # --- members --------------------------------------------------------------------
        self.members = ModuleDict()  # mmengine's: init_weights reaches every member's init_cfg
        self._member_ckpts: Dict[str, Optional[str]] = {}
        for name, spec in members.items():
            model, ckpt, _ = build_network(spec, f'member {name!r}')
            self.members[name] = model
            self._member_ckpts[name] = ckpt
        self._load_member_checkpoints()
        if data_preprocessor is None:
            pre = getattr(self.members[eval_member], 'data_preprocessor', None)
            if not isinstance(pre, nn.Module):
                raise TypeError(f'member {eval_member!r} has no data_preprocessor; give the '
                                'CohortDistiller one with data_preprocessor=dict(...).')
            self.data_preprocessor = pre
        # a member with another normalisation / channel order gets the batch re-normalised
        self._input_norm = {
            m: input_transform(self.data_preprocessor, getattr(net, 'data_preprocessor', None))
            for m, net in self.members.items()
        }

        # --- taps -------------------------------------------------------------------------
        self.tap_specs: Dict[str, TapSpec] = {}
        for tap, text in taps.items():
            self.tap_specs[tap] = self._parse_tap(tap, text)
        self._taps = {
            m:
            TapSet(self.members[m], [sp for sp in self.tap_specs.values() if sp.side == m],
                   f'member {m!r}')
            for m in self.members
        }

        # --- losses -----------------------------------------------------------------------
        self.losses = nn.ModuleDict()
        self.loss_maps: Dict[str, dict] = {}
        self.schedules: Dict[str, object] = {}
        for name, cfg in losses.items():
            self._add_loss(name, dict(cfg))

        # --- connectors -------------------------------------------------------------------
        learner_taps = {e[0] for m in self.loss_maps.values() for e in m['edges']}
        used = learner_taps | {e[1] for m in self.loss_maps.values() for e in m['edges']}
        used |= {v for m in self.loss_maps.values() for v in m['extras'].values()}
        frozen = {
            t:
            'is only a (detached) target; put learned connectors on a learner tap '
            '(student= or mutual=)'
            for t in self.tap_specs if t not in learner_taps
        }
        self.connectors = build_tap_connectors(connectors, list(self.tap_specs), used, frozen)

        self.register_buffer('distill_iter', torch.zeros((), dtype=torch.long))
        self._in_train_step = False
        self._counts_initialised = False

    # ------------------------------------------------------------------------------------
    # construction helpers
    # ------------------------------------------------------------------------------------
    def _parse_tap(self, tap: str, text: str) -> TapSpec:
        """Parse ``'<member>:<module>...'`` with the taps module's grammar."""
        if not isinstance(text, str) or ':' not in text:
            raise ValueError(f"tap {tap!r} = {text!r} is not valid; write "
                             f"'<member>:<dotted.module>', e.g. "
                             f"'{next(iter(self.members))}:decode_head.conv_seg'.")
        member, _, rest = text.strip().partition(':')
        if member not in self.members:
            raise KeyError(f'tap {tap!r} = {text!r} names member {member!r}, which does not '
                           f'exist; start the tap with one of: {", ".join(self.members)}.')
        spec = TapSpec.parse(tap, f'student:{rest}')  # the grammar knows two sides only
        spec.side, spec.text = member, text
        return spec

    def _tap_member(self, tap: str) -> str:
        return self.tap_specs[tap].side

    def _check_tap(self, loss: str, key: str, tap) -> str:
        if not isinstance(tap, str) or tap not in self.tap_specs:
            raise KeyError(f'loss {loss!r} maps {key}={tap!r}, which is not a tap; define it in '
                           f'taps= or use one of: {", ".join(self.tap_specs)}.')
        return tap

    def _add_loss(self, name: str, cfg: dict) -> None:
        check_loss_name(name, 'loss_dml')
        mutual = cfg.pop('mutual', None)
        has_pair = 'student' in cfg or 'teacher' in cfg
        if (mutual is None) == (not has_pair):
            raise ValueError(f"loss {name!r} needs either mutual=['<tap>', '<tap>', ...] or "
                             f"student='<learner tap>', teacher='<target tap>' (not both).")
        edges = []
        if mutual is not None:
            if not isinstance(mutual, (list, tuple)) or len(mutual) < 2:
                raise ValueError(f"loss {name!r}: mutual must list two or more taps, e.g. "
                                 f"mutual=['a_logits', 'b_logits'].")
            taps = [self._check_tap(name, 'mutual', t) for t in mutual]
            owners = [self._tap_member(t) for t in taps]
            if len(set(owners)) != len(owners):
                raise ValueError(f'loss {name!r}: mutual taps {taps} must belong to different '
                                 f'members (they belong to {owners}).')
            w = 1.0 / (len(taps) - 1)  # mean over the other members
            edges = [(s, t, w) for s in taps for t in taps if s != t]
        else:
            for key in ('student', 'teacher'):
                if key not in cfg:
                    raise KeyError(f"loss {name!r} needs {key}='<tap name>' "
                                   f'(taps: {", ".join(self.tap_specs)}).')
            s = self._check_tap(name, 'student', cfg.pop('student'))
            t = self._check_tap(name, 'teacher', cfg.pop('teacher'))
            if self._tap_member(s) == self._tap_member(t):
                raise ValueError(f'loss {name!r}: student tap {s!r} and teacher tap {t!r} belong '
                                 f'to the same member {self._tap_member(s)!r}; pair taps of two '
                                 f'members.')
            edges = [(s, t, 1.0)]
        cls = loss_class(name, cfg.get('type'))
        extras = map_extra_inputs(name, cls, cfg, list(self.tap_specs))
        schedule = build_schedule(cfg.pop('schedule', None))
        module = MODELS.build(cfg)
        if is_adversarial(module) or any(p.requires_grad for p in module.parameters()):
            raise ValueError(f'loss {name!r} ({cls.__name__}) has trainable parameters; the '
                             f'CohortDistiller takes parameter-free losses (put learned adapters '
                             f'in connectors=, adversarial losses are not supported).')
        self.losses[name] = module
        self.schedules[name] = schedule
        self.loss_maps[name] = dict(
            edges=edges,
            extras=extras,
            learners=sorted({self._tap_member(e[0])
                             for e in edges}, key=list(self.members).index))

    def _load_member_checkpoints(self) -> None:
        from mmengine.runner import load_checkpoint
        for name, ckpt in self._member_ckpts.items():
            if ckpt is None:
                continue
            net = self.members[name]
            loaded = load_checkpoint(net, ckpt, map_location='cpu', strict=False, logger='current')
            sd = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
            own = net.state_dict()
            check_checkpoint_match(own.keys(), sd.keys(), f'member {name!r} checkpoint {ckpt!r}')
            wrong = [
                k for k, v in sd.items()
                if k in own and torch.is_tensor(v) and tuple(v.shape) != tuple(own[k].shape)
            ]
            if wrong:  # strict=False loads the rest and only warns about these
                k = wrong[0]
                raise ValueError(f'member {name!r} checkpoint {ckpt!r} has {len(wrong)} entries '
                                 f'of another shape (e.g. {k}: {tuple(sd[k].shape)} vs '
                                 f'{tuple(own[k].shape)}); use a checkpoint of this exact '
                                 f'architecture.')

    def init_weights(self) -> None:
        """Initialise every member (and connectors), then reload the members' checkpoints.

        Without the reload a member's ``init_cfg`` would overwrite the weights given by
        ``members=dict(<name>=dict(..., checkpoint=...))``.
        """
        super().init_weights()
        self._load_member_checkpoints()

    # ------------------------------------------------------------------------------------
    # public helpers
    # ------------------------------------------------------------------------------------
    @property
    def student(self) -> nn.Module:
        """The evaluated member (so ``StudentCheckpointHook`` saves it during training)."""
        return self.members[self.eval_member]

    def member_state_dict(self, member: str) -> dict:
        """State dict of one member (keys load into that member's own config).

        Args:
            member (str): member name.

        Returns:
            dict: the member's ``state_dict()``.
        """
        if member not in self.members:
            raise KeyError(f'member {member!r} does not exist; use one of: '
                           f'{", ".join(self.members)}.')
        return self.members[member].state_dict()

    def summary(self) -> str:
        """What this cohort does, in a few lines (logged once, on the first training step)."""
        lines = [
            f'CohortDistiller: members {", ".join(self.members)} '
            f'(eval_member {self.eval_member!r})'
        ]
        for name, sp in self.tap_specs.items():
            lines.append(f'  tap {name} = {sp.text}')
        for tap, chain in self.connectors.items():
            lines.append(f'  connector on {tap}: ' +
                         ' -> '.join(type(m).__name__ for m in chain.children()))
        for name, mod in self.losses.items():
            edges = ', '.join(f'{s} <- {t}' + (f' x{w:.3g}' if w != 1 else '')
                              for s, t, w in self.loss_maps[name]['edges'])
            sched = self.schedules.get(name)
            lines.append(f'  loss {name} = {type(mod).__name__}({edges}), weight '
                         f"{getattr(mod, 'loss_weight', '?')}" +
                         (f', schedule {sched!r}' if sched is not None else ''))
        return '\n'.join(lines)

    # ------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------
    def _member_inputs(self, member: str, inputs: Tensor) -> Tensor:
        return adapt_inputs(self._input_norm.get(member), inputs)

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None, mode: str = 'tensor'):
        """``loss``: every member's losses; ``predict``/``tensor``: ``eval_member`` alone."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.members[self.eval_member](
                self._member_inputs(self.eval_member, inputs), data_samples, mode=mode)
        raise RuntimeError(f"Invalid mode {mode!r}; use 'loss', 'predict' or 'tensor'.")

    def _factor(self, name: str, it: int, epoch: int) -> float:
        sched = self.schedules.get(name)
        return 1.0 if sched is None else float(sched(it, epoch))

    def _current_epoch(self) -> int:
        if not any(s is not None and s.stop_epoch is not None for s in self.schedules.values()):
            return 0
        return int(MessageHub.get_current_instance().get_info('epoch', 0) or 0)

    def _zero_term(self, name: str, member: str, ref: Tensor) -> Tensor:
        """0 that touches the learner-side connectors of ``member`` (keeps DDP happy)."""
        return zero_term([
            p for s, _, _ in self.loss_maps[name]['edges']
            if self._tap_member(s) == member and s in self.connectors
            for p in self.connectors[s].parameters()
        ], ref)

    def loss(self, inputs: Tensor, data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Every member's task losses plus the weighted, scheduled distillation terms.

        Args:
            inputs (Tensor): preprocessed batch (cohort normalisation).
            data_samples (list): the batch's data samples.

        Returns:
            dict[str, Tensor]: ``'<member>.<task loss>'`` and ``'<learner>.<loss name>'``.
        """
        it = int(self.distill_iter)
        epoch = self._current_epoch()
        losses: Dict[str, Tensor] = {}
        raw: Dict[str, object] = {}
        for m, net in self.members.items():
            with self._taps[m].recording() as rec:
                task = net.loss(self._member_inputs(m, inputs), data_samples)
            missing = [sp for sp in self._taps[m].specs if sp.name not in rec]
            if missing:
                raise RuntimeError(f'tap {missing[0].name!r} ({missing[0].text!r}) never fired: '
                                   f'module {missing[0].module!r} is not called in member '
                                   f'{m!r}\'s training forward; tap a module that runs then.')
            raw.update(rec)
            for k, v in task.items():
                losses[f'{m}.{k}'] = v
        if self.training and not getattr(self, '_summary_logged', False):
            self._summary_logged = True
            print_log(self.summary(), logger='current')

        connected: Dict[str, object] = {}

        def value(tap: str):
            if tap in SPECIAL_INPUTS:
                return inputs if tap == 'inputs' else data_samples
            if tap not in connected:
                v = raw[tap]
                connected[tap] = self.connectors[tap](v, raw) if tap in self.connectors else v
            return connected[tap]

        for name, loss_mod in self.losses.items():
            m = self.loss_maps[name]
            factor = self._factor(name, it, epoch)
            for learner in m['learners']:
                key = f'{learner}.{name}'
                if key in losses:
                    raise KeyError(f'distillation loss name {name!r} clashes with a task loss of '
                                   f'member {learner!r}; rename it.')
                if factor <= 0:
                    losses[key] = self._zero_term(name, learner, inputs)
            if factor <= 0:
                continue
            extras = {k: value(src) for k, src in m['extras'].items()}
            for s_tap, t_tap, w in m['edges']:
                # the target member is a constant for the learner (DML: p_j detached)
                val = loss_mod(value(s_tap), detached(value(t_tap)), **extras) * (w * factor)
                key = f'{self._tap_member(s_tap)}.{name}'
                losses[key] = val if key not in losses else losses[key] + val
        if self.training:
            self.distill_iter += 1
        return losses

    # ------------------------------------------------------------------------------------
    # training step (also through DistillerDataParallel)
    # ------------------------------------------------------------------------------------
    def _member_wrappers(self, optim_wrapper) -> Dict[str, OptimWrapper]:
        names = list(self.members)
        if not isinstance(optim_wrapper, OptimWrapperDict):
            raise TypeError('CohortDistiller trains each member with its own optimizer: set '
                            "optim_wrapper=dict(constructor='CohortOptimWrapperConstructor', " +
                            ', '.join(f'{n}=dict(...)' for n in names) + ').')
        keys = list(optim_wrapper.keys())
        missing = [n for n in names if n not in keys]
        if missing:
            raise KeyError(f'the optim wrapper dict has no entry for member(s) {missing}; '
                           f'give one optimizer per member ({", ".join(names)}).')
        return {n: optim_wrapper[n] for n in names}

    def _initialise_counts(self, wrappers: Dict[str, OptimWrapper]) -> None:
        """``OptimWrapperDict.initialize_count_status`` does nothing: do it per member."""
        if self._counts_initialised:
            return
        self._counts_initialised = True
        hub = MessageHub.get_current_instance()
        max_iters = hub.get_info('max_iters')
        if max_iters is None:
            return
        cur = int(hub.get_info('iter', 0) or 0)
        for n, ow in wrappers.items():
            ow.initialize_count_status(self.members[n], cur, max_iters)

    def train_step(self,
                   data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapperDict,
                   ddp_model: Optional[nn.Module] = None) -> Dict[str, Tensor]:
        """One iteration: one forward of every member, one backward, one update per member.

        Each member's loss is scaled by its own wrapper (``scale_loss``: gradient accumulation;
        the AMP loss scaler when the wrapper has one) before the sum is back-propagated; the
        targets are detached, so each member receives exactly the gradient of its own loss.

        Args:
            data (dict | tuple | list): a batch from the dataloader.
            optim_wrapper (OptimWrapperDict): one wrapper per member (keys = member names).
            ddp_model (nn.Module | None): the DDP wrapper around ``self``
                (``DistillerDataParallel``).

        Returns:
            dict[str, Tensor]: log variables (``loss``, ``'<member>.loss'``, every term).
        """
        caller = ddp_model if ddp_model is not None else self
        wrappers = self._member_wrappers(optim_wrapper)
        self._initialise_counts(wrappers)
        self._in_train_step = True
        try:
            with ExitStack() as stack:
                for ow in wrappers.values():
                    stack.enter_context(ow.optim_context(caller))
                data = self.data_preprocessor(data, True)
                losses = caller._run_forward(data, mode='loss')
        finally:
            self._in_train_step = False
        _, log_vars = self.parse_losses(losses)
        parts = []
        for m, ow in wrappers.items():
            own = {k: v for k, v in losses.items() if k.startswith(m + '.')}
            total, _ = self.parse_losses(own)
            log_vars[f'{m}.loss'] = total.detach()
            part = ow.scale_loss(total)
            scaler = getattr(ow, 'loss_scaler', None)  # AmpOptimWrapper
            parts.append(scaler.scale(part) if scaler is not None else part)
        torch.stack([p.reshape(()) for p in parts]).sum().backward()
        for ow in wrappers.values():
            ow._inner_count += 1  # what OptimWrapper.backward counts
        for ow in wrappers.values():
            if ow.should_update():
                ow.step()
                ow.zero_grad()
        return log_vars
