"""Checks that a checkpoint belongs to the model it is loaded into.

``load_checkpoint(..., strict=False)`` loads whatever matches and logs one warning for the rest,
so a checkpoint of a different architecture (2 of 282 entries matching) leaves a randomly
initialised network behind without stopping the run. :func:`check_checkpoint_match` turns that
into an error that lists what did not match.
"""
from __future__ import annotations

from typing import Iterable, List, Sequence

#: Entries that are not weights a trained checkpoint must provide: BatchNorm's step counters
#: (absent from checkpoints of old PyTorch versions, unused at inference).
DEFAULT_IGNORE_SUFFIXES = ('num_batches_tracked', )


def _strip_wrapper(key: str) -> str:
    """Drop the ``module.`` prefix that DataParallel / DDP checkpoints carry."""
    return key[len('module.'):] if key.startswith('module.') else key


def check_checkpoint_match(model_state_keys: Iterable[str],
                           ckpt_state_keys: Iterable[str],
                           what: str,
                           ignore_prefixes: Sequence[str] = ('auxiliary_head.', ),
                           min_fraction: float = 1.0,
                           ignore_suffixes: Sequence[str] = DEFAULT_IGNORE_SUFFIXES,
                           max_listed: int = 10) -> None:
    """Raise when a checkpoint provides too few of a model's state-dict entries.

    Keys of the model that start with one of ``ignore_prefixes`` (training-only parts such as an
    auxiliary head) or end with one of ``ignore_suffixes`` are not required. Of the remaining
    keys, at least ``min_fraction`` must be present in the checkpoint (``module.`` prefixes of
    DataParallel checkpoints are ignored on both sides).

    Args:
        model_state_keys (Iterable[str]): ``model.state_dict().keys()``.
        ckpt_state_keys (Iterable[str]): keys of the checkpoint's ``state_dict``.
        what (str): what is being loaded, for the message, e.g.
            ``"teacher checkpoint 'work_dirs/t/iter_2000.pth'"``.
        ignore_prefixes (Sequence[str]): model keys with these prefixes may be missing.
        min_fraction (float): required fraction (0..1] of the non-ignored model keys.
            Defaults to 1.0 (all of them).
        ignore_suffixes (Sequence[str]): model keys with these suffixes may be missing.
        max_listed (int): how many missing keys the message lists (and half as many of the
            checkpoint's keys that the model does not have).

    Returns:
        None

    Raises:
        ValueError: fewer than ``min_fraction`` of the required keys are in the checkpoint; the
            message gives the count and lists up to ``max_listed`` missing keys.
    """
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f'min_fraction must be in (0, 1], got {min_fraction}.')
    have = {_strip_wrapper(k) for k in ckpt_state_keys}
    model_keys = [_strip_wrapper(k) for k in model_state_keys]
    required = [
        k for k in model_keys
        if not k.startswith(tuple(ignore_prefixes)) and not k.endswith(tuple(ignore_suffixes))
    ]
    if not required:
        return
    missing: List[str] = [k for k in required if k not in have]
    matched = len(required) - len(missing)
    if matched >= min_fraction * len(required) - 1e-9:
        return
    model_set = set(model_keys)
    unexpected = sorted(k for k in have if k not in model_set)
    listed = ', '.join(missing[:max_listed]) + (', ...' if len(missing) > max_listed else '')
    extra = ''
    if unexpected:
        n_shown = max(1, max_listed // 2)
        extra = (f'; it holds {len(unexpected)} entries the model does not have (e.g. ' +
                 ', '.join(unexpected[:n_shown]) + (', ...' if len(unexpected) > n_shown else '') +
                 ')')
    ignored = ', '.join(repr(p) for p in ignore_prefixes) or 'none'
    raise ValueError(
        f'{what} matches only {matched} of the {len(required)} required model entries '
        f'(ignored prefixes: {ignored}); missing: {listed}{extra} - use a checkpoint of this '
        f'exact architecture, or checkpoint=None to start from random weights on purpose.')
