"""Export a student-only checkpoint from a distiller checkpoint (or a live distiller)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import torch

STUDENT_PREFIX = 'student.'


def student_state_dict(state_dict: dict, prefix: str = STUDENT_PREFIX) -> OrderedDict:
    """Keep the ``student.*`` entries of a distiller state dict, with the prefix removed.

    Connectors, discriminators and the distiller's counters are dropped.

    Args:
        state_dict (dict): distiller state dict (``module.`` prefixes from DDP are tolerated).
        prefix (str): prefix of the student entries.

    Returns:
        OrderedDict: a state dict that loads into the plain student model.
    """
    out = OrderedDict()
    for k, v in state_dict.items():
        if k.startswith('module.'):
            k = k[len('module.'):]
        if k.startswith(prefix):
            out[k[len(prefix):]] = v
    if not out:
        raise KeyError(f'no {prefix!r} entries in the checkpoint: is it a Distiller checkpoint? '
                       f'(first keys: {list(state_dict)[:3]}).')
    return out


def extract_student(src: str, dst: str, meta: Optional[dict] = None) -> dict:
    """Read a distiller checkpoint and write ``{'state_dict', 'meta'}`` for the student alone.

    Args:
        src (str): distiller checkpoint (as written by the Runner's CheckpointHook).
        dst (str): output path.
        meta (dict | None): extra meta entries.

    Returns:
        dict: the written checkpoint.
    """
    from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint
    ckpt = _load_checkpoint(src, map_location='cpu')
    sd = ckpt.get('state_dict', ckpt)
    out = dict(state_dict=student_state_dict(sd),
               meta=dict((ckpt.get('meta') or {}), extracted_from=src, **(meta or {})))
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
      own keys): the entries are loaded into the distiller's student.

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
