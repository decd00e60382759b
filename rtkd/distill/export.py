"""Export a student-only checkpoint from a distiller checkpoint (or a live distiller)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import torch

STUDENT_PREFIX = 'student.'
#: where a Distiller with ``export_exclude`` records the list in its state dict
EXPORT_INFO_KEY = '_export_info._extra_state'


def drop_modules(state_dict: dict, modules: Sequence[str]) -> OrderedDict:
    """Remove the entries of some modules from a (student) state dict.

    Args:
        state_dict (dict): a state dict.
        modules (Sequence[str]): dotted module names, e.g. ``['auxiliary_head.2']``: the keys
            ``<name>.*`` are dropped (self-distillation-only parts, ``Distiller.export_exclude``).

    Returns:
        OrderedDict: the remaining entries, in their order.
    """
    prefixes = tuple(f'{m}.' for m in modules)
    out = OrderedDict(
        (k, v) for k, v in state_dict.items() if not (prefixes and k.startswith(prefixes)))
    meta = getattr(state_dict, '_metadata', None)
    if meta is not None:  # torch's per-module version info, used by load_state_dict
        out._metadata = OrderedDict(
            (k, v) for k, v in meta.items() if not (prefixes and f'{k}.'.startswith(prefixes)))
    return out


def student_state_dict(state_dict: dict, prefix: str = STUDENT_PREFIX) -> OrderedDict:
    """Keep the ``student.*`` entries of a distiller state dict, with the prefix removed.

    Connectors, discriminators and the distiller's counters are dropped, and so are the student
    modules a self-distillation run recorded as ``export_exclude`` (``EXPORT_INFO_KEY``).

    Args:
        state_dict (dict): distiller state dict (``module.`` prefixes from DDP are tolerated).
        prefix (str): prefix of the student entries.

    Returns:
        OrderedDict: a state dict that loads into the plain student model.
    """
    out = OrderedDict()
    exclude = []
    for k, v in state_dict.items():
        if k.startswith('module.'):
            k = k[len('module.'):]
        if k.startswith(prefix):
            out[k[len(prefix):]] = v
        elif k == EXPORT_INFO_KEY and isinstance(v, dict):
            exclude = list(v.get('export_exclude') or [])
    if not out:
        raise KeyError(f'no {prefix!r} entries in the checkpoint: is it a Distiller checkpoint? '
                       f'(first keys: {list(state_dict)[:3]}).')
    return drop_modules(out, exclude) if exclude else out


MEMBERS_PREFIX = 'members.'


def cohort_members(state_dict: dict) -> list:
    """Member names of a ``CohortDistiller`` state dict (``members.<name>.*``), in order.

    Args:
        state_dict (dict): a state dict (``module.`` prefixes tolerated).

    Returns:
        list[str]: the member names ([] for other checkpoints).
    """
    names = []
    for k in state_dict:
        if k.startswith('module.'):
            k = k[len('module.'):]
        if k.startswith(MEMBERS_PREFIX):
            name = k[len(MEMBERS_PREFIX):].split('.', 1)[0]
            if name not in names:
                names.append(name)
    return names


def member_state_dict(state_dict: dict, member: str) -> OrderedDict:
    """One member of a ``CohortDistiller`` state dict, as a plain state dict of its config.

    Args:
        state_dict (dict): cohort state dict (``module.`` prefixes tolerated).
        member (str): member name.

    Returns:
        OrderedDict: the ``members.<member>.*`` entries with that prefix removed.
    """
    members = cohort_members(state_dict)
    if member not in members:
        raise KeyError(f'member {member!r} is not in the checkpoint; ' +
                       (f'its members are: {", ".join(members)}.' if members else
                        'it is not a CohortDistiller checkpoint (no members.* entries).'))
    return student_state_dict(state_dict, prefix=f'{MEMBERS_PREFIX}{member}.')


def extract_student(src: str,
                    dst: str,
                    meta: Optional[dict] = None,
                    member: Optional[str] = None) -> dict:
    """Read a distiller checkpoint and write ``{'state_dict', 'meta'}`` for the student alone.

    Args:
        src (str): distiller checkpoint (as written by the Runner's CheckpointHook).
        dst (str): output path.
        meta (dict | None): extra meta entries.
        member (str | None): for a ``CohortDistiller`` checkpoint (online distillation): the
            member to export (required there, refused elsewhere).

    Returns:
        dict: the written checkpoint.
    """
    from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint
    ckpt = _load_checkpoint(src, map_location='cpu')
    sd = ckpt.get('state_dict', ckpt)
    members = cohort_members(sd)
    if member is not None or members:
        if member is None:
            raise KeyError(f'{src!r} is a cohort checkpoint with members {members}: name the '
                           f'member to export (extract_student.py ... --member <name>).')
        sd_out = member_state_dict(sd, member)
        meta = dict(meta or {}, member=member)
    else:
        sd_out = student_state_dict(sd)
    out = dict(
        state_dict=sd_out, meta=dict((ckpt.get('meta') or {}), extracted_from=src, **(meta or {})))
    # Runner-specific entries (message_hub, optimizer, param_schedulers) are not carried over.
    out['meta'].pop('hook_msgs', None)
    save_checkpoint(out, dst)
    return out


def _tensor_bytes(sd: dict) -> int:
    return sum(v.numel() * v.element_size() for v in sd.values() if torch.is_tensor(v))


def adapt_checkpoint_kind(model, state_dict: dict) -> tuple:
    """Fit a distiller checkpoint to a plain student model, or a student checkpoint to a distiller.

    The one rule every tool follows (``mim test``, ``tools/test.py``, ``load_from``, the report
    and export tools):

    * a model without a ``student`` (a student config) given a distiller checkpoint (every
      weight under ``student.``): the ``student.*`` entries are loaded, prefix removed;
    * a ``Distiller`` given a plain student checkpoint (no ``student.`` entry, but the student's
      own keys): the entries are loaded into the distiller's student;
    * a ``CohortDistiller`` given a plain checkpoint of its ``eval_member``: loaded into that
      member; a plain model given a cohort checkpoint (``members.<name>.*``): the one member
      whose keys fit is loaded, several fitting members stop with how to pick one.

    Anything else is returned unchanged.

    Args:
        model (nn.Module): the model the checkpoint is loaded into (DDP wrappers are unwrapped).
        state_dict (dict): the checkpoint's state dict (after ``module.`` stripping).

    Returns:
        tuple: (state dict to load, a one-line description of the adaptation or None).
    """
    target = getattr(model, 'module', model)
    keys = [k for k in state_dict if not k.startswith('_')]
    if not keys:
        return state_dict, None
    members = cohort_members(state_dict)
    own_members = getattr(target, 'members', None)
    if isinstance(own_members, torch.nn.ModuleDict) and hasattr(target, 'eval_member'):
        if not members:  # a plain member checkpoint in a cohort: load it into eval_member
            ev = target.eval_member
            if set(own_members[ev].state_dict()) & set(keys):
                sd = OrderedDict((f'{MEMBERS_PREFIX}{ev}.{k}', v) for k, v in state_dict.items())
                return sd, (f'a plain checkpoint in a cohort: loaded its {len(keys)} entries '
                            f'into eval_member {ev!r}')
        return state_dict, None
    if members and not any(k.startswith(STUDENT_PREFIX) for k in keys):
        own = set(target.state_dict())
        fits = [
            m for m in members
            if own and not (own & set(state_dict)) and own <= set(member_state_dict(state_dict, m))
        ]
        if len(fits) == 1:
            sd = member_state_dict(state_dict, fits[0])
            return sd, (f'a cohort checkpoint in a plain model: loaded member {fits[0]!r} '
                        f'({len(sd)} entries)')
        if len(fits) > 1:
            raise ValueError(f'a cohort checkpoint (members {", ".join(fits)} fit this model): '
                             f'export one with tools/model_converters/extract_student.py CKPT '
                             f'OUT --member <name>, or test the cohort config '
                             f'(--cfg-options model.eval_member=<name>).')
    has_student = isinstance(getattr(target, 'student', None), torch.nn.Module)
    n_student = sum(k.startswith(STUDENT_PREFIX) for k in keys)
    if not has_student and n_student:
        own = set(target.state_dict())
        sd = student_state_dict(state_dict)
        if own and not (own & set(state_dict)) and (own & set(sd)):
            return sd, (f'a distiller checkpoint in a plain model: loaded its {len(sd)} '
                        f'student.* entries (connectors / critics / counters left out)')
    if has_student and not n_student:
        student_keys = set(target.student.state_dict())
        if student_keys & set(keys):
            sd = OrderedDict((STUDENT_PREFIX + k, v) for k, v in state_dict.items())
            return sd, (f'a student checkpoint in a distiller: loaded its {len(keys)} entries '
                        f'into the student')
    return state_dict, None
