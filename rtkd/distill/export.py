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
