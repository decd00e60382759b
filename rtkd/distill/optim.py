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
