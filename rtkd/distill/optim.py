"""Optimizer-wrapper constructor for distillation: a student optimizer and, for adversarial
losses (e.g. ``HolisticKD``), a separate discriminator optimizer.

Config (adversarial)::

    optim_wrapper = dict(
        constructor='DistillOptimWrapperConstructor',
        student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4,
                                                                 betas=(0.5, 0.9))))

``student`` gets every parameter whose name does not contain ``'.discriminator.'`` (student,
connectors, other learnable loss parts; ``paramwise_cfg`` inside ``student`` is honoured);
``discriminator`` gets the rest. The result is an ``OptimWrapperDict`` with keys ``student`` and
``discriminator`` (so the Runner saves and resumes both). Without ``student``/``discriminator``
keys the constructor behaves like mmengine's default one but still keeps discriminator
parameters out (and refuses a model that has some, since nothing would train them).
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

DISC_KEY = '.discriminator.'


def _strip_params(wrapper, drop: set) -> None:
    opt = wrapper.optimizer
    groups = []
    for g in opt.param_groups:
        g['params'] = [p for p in g['params'] if id(p) not in drop]
        if g['params']:
            groups.append(g)
    opt.param_groups = groups


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillOptimWrapperConstructor:
    """Build ``OptimWrapperDict(student=..., discriminator=...)`` (or one wrapper).

    Args:
        optim_wrapper_cfg (dict): either ``dict(student=<wrapper cfg>, discriminator=<wrapper
            cfg>)`` or a single wrapper config (``type``, ``optimizer``, ...).
        paramwise_cfg (dict | None): paramwise options for the student optimizer (a
            ``paramwise_cfg`` inside ``student`` takes precedence).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError('optim_wrapper must be a dict.')
        self.cfg = dict(optim_wrapper_cfg)
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: nn.Module):
        """Build the wrapper(s) for ``model`` (a Distiller, possibly DDP-wrapped)."""
        if is_model_wrapper(model):
            model = model.module
        disc = {id(p): p for n, p in model.named_parameters() if DISC_KEY in f'.{n}'}
        split = 'student' in self.cfg or 'discriminator' in self.cfg
        if not split:
            if disc:
                raise ValueError('the model has discriminator parameters: write optim_wrapper='
                                 "dict(constructor='DistillOptimWrapperConstructor', student="
                                 'dict(...), discriminator=dict(...)).')
            return DefaultOptimWrapperConstructor(self.cfg, self.paramwise_cfg)(model)
        unknown = set(self.cfg) - {'student', 'discriminator'}
        if unknown or 'student' not in self.cfg:
            raise ValueError(f"DistillOptimWrapperConstructor expects keys 'student' and "
                             f"(for adversarial losses) 'discriminator'; got {sorted(self.cfg)}.")
        s_cfg = dict(self.cfg['student'])
        pw = s_cfg.pop('paramwise_cfg', self.paramwise_cfg)
        student = DefaultOptimWrapperConstructor(s_cfg, pw)(model)
        _strip_params(student, set(disc))
        wrappers = dict(student=student)
        if 'discriminator' in self.cfg:
            if not disc:
                raise ValueError("optim_wrapper has a 'discriminator' entry but no loss owns a "
                                 'discriminator; remove the entry.')
            d_cfg = dict(self.cfg['discriminator'])
            d_pw = d_cfg.pop('paramwise_cfg', None)
            holder = nn.ParameterList(list(disc.values()))
            wrappers['discriminator'] = DefaultOptimWrapperConstructor(d_cfg, d_pw)(holder)
        elif disc:
            raise ValueError("the model has discriminator parameters: add discriminator=dict("
                             "type='OptimWrapper', optimizer=dict(...)) to optim_wrapper.")
        return OptimWrapperDict(**wrappers)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CohortOptimWrapperConstructor:
    """One optimizer wrapper per member of a ``CohortDistiller`` (online distillation).

    Config::

        optim_wrapper = dict(
            constructor='CohortOptimWrapperConstructor',
            a=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.045, momentum=0.9),
                   paramwise_cfg=dict(dwconv_decay_mult=0.0)),
            b=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))

    Member ``m``'s wrapper gets the parameters of ``members.m`` plus those of the connectors
    on ``m``'s taps; a top-level ``paramwise_cfg`` applies to members whose entry has none.
    Param schedulers: a list applies to every member, ``dict(a=[...], b=[...])`` per member.
    The result is an ``OptimWrapperDict`` keyed by member name, so the Runner saves and
    resumes every member's optimizer state.

    Args:
        optim_wrapper_cfg (dict): member name -> optim wrapper config (one for every member).
        paramwise_cfg (dict | None): default paramwise options.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError('optim_wrapper must be a dict.')
        self.cfg = dict(optim_wrapper_cfg)
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        """Build ``OptimWrapperDict(<member>=...)`` for ``model`` (possibly DDP-wrapped)."""
        if is_model_wrapper(model):
            model = model.module
        members = getattr(model, 'members', None)
        if not isinstance(members, nn.ModuleDict):
            raise TypeError('CohortOptimWrapperConstructor is for a CohortDistiller (a model '
                            'with members); use the default constructor for other models.')
        names = list(members)
        example = ', '.join(f"{n}=dict(type='OptimWrapper', optimizer=dict(...))" for n in names)
        missing = [n for n in names if n not in self.cfg]
        if missing:
            raise KeyError(f'optim_wrapper has no entry for member(s) {missing}; add '
                           f'{", ".join(missing)} (one optimizer per member: {example}).')
        unknown = [k for k in self.cfg if k not in names]
        if unknown:
            raise KeyError(f'optim_wrapper entries {unknown} are not members; name the entries '
                           f'after the members ({", ".join(names)}).')
        wrappers = {}
        for n in names:
            cfg = dict(self.cfg[n])
            if 'optimizer' not in cfg:
                raise KeyError(f"optim_wrapper.{n} needs optimizer=dict(type=..., lr=...).")
            pw = cfg.pop('paramwise_cfg', self.paramwise_cfg)
            conns = [model.connectors[t] for t in model.connectors if model.tap_specs[t].side == n]
            holder = members[n] if not conns else nn.ModuleList([members[n], *conns])
            wrappers[n] = DefaultOptimWrapperConstructor(cfg, pw)(holder)
        return OptimWrapperDict(**wrappers)
