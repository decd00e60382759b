"""Loss-weight schedules: a factor in [0, 1] (times ``scale``) multiplied onto a distillation loss.

Written in a recipe as ``schedule=dict(...)`` inside a loss entry::

    losses=dict(loss_cwd=dict(type='ChannelWiseKD', ..., schedule=dict(warmup_iters=500,
                                                                        stop_iter=20000)))

The factor at iteration ``i`` (0-based, the distiller's own counter, saved in checkpoints) is

* ``0`` before ``start_iter`` (a hard start, e.g. FGFI's 400 iterations without imitation),
* ``(i - start_iter) / warmup_iters`` during the warm-up (linear ramp from 0, counted from
  ``start_iter``, which defaults to 0),
* ``1 - (1 - end_factor) * (i - decay_begin) / (decay_end - decay_begin)`` during a linear decay,
  ``end_factor`` after ``decay_end``,
* ``0`` from ``stop_iter`` on, or from epoch ``stop_epoch`` on (epoch-based loops; the epoch comes
  from the Runner's message hub). A loss whose factor is 0 is not computed at all.
"""
from __future__ import annotations

from typing import Optional


class LossSchedule:
    """Piecewise-linear factor for a distillation loss.

    Args:
        warmup_iters (int): iterations of linear warm-up from 0 to 1 (0 = none), counted
            from ``start_iter``.
        decay_begin (int | None): iteration where a linear decay starts.
        decay_end (int | None): iteration where the decay reaches ``end_factor``.
        end_factor (float): factor at and after ``decay_end``.
        stop_iter (int | None): from this iteration on the loss is switched off.
        stop_epoch (int | None): from this epoch (0-based) on the loss is switched off.
        scale (float): constant multiplier (on top of the loss's own ``loss_weight``).
        start_iter (int): before this iteration the loss is off (factor 0; 0 = on from the
            first iteration).
    """

    def __init__(self,
                 warmup_iters: int = 0,
                 decay_begin: Optional[int] = None,
                 decay_end: Optional[int] = None,
                 end_factor: float = 0.0,
                 stop_iter: Optional[int] = None,
                 stop_epoch: Optional[int] = None,
                 scale: float = 1.0,
                 start_iter: int = 0) -> None:
        if warmup_iters < 0:
            raise ValueError(f'schedule warmup_iters must be >= 0, got {warmup_iters}.')
        if start_iter < 0:
            raise ValueError(f'schedule start_iter must be >= 0, got {start_iter}.')
        if (decay_begin is None) != (decay_end is None):
            raise ValueError('schedule needs both decay_begin and decay_end (or neither).')
        if decay_begin is not None and decay_end <= decay_begin:
            raise ValueError(f'schedule decay_end ({decay_end}) must be > decay_begin '
                             f'({decay_begin}).')
        self.warmup_iters = int(warmup_iters)
        self.decay_begin = decay_begin
        self.decay_end = decay_end
        self.end_factor = float(end_factor)
        self.stop_iter = stop_iter
        self.stop_epoch = stop_epoch
        self.scale = float(scale)
        self.start_iter = int(start_iter)

    def __call__(self, it: int, epoch: int = 0) -> float:
        """Factor at 0-based iteration ``it`` and epoch ``epoch``."""
        if self.stop_iter is not None and it >= self.stop_iter:
            return 0.0
        if self.stop_epoch is not None and epoch >= self.stop_epoch:
            return 0.0
        if it < self.start_iter:
            return 0.0
        f = 1.0
        if self.warmup_iters and it - self.start_iter < self.warmup_iters:
            f = (it - self.start_iter) / self.warmup_iters
        if self.decay_begin is not None and it >= self.decay_begin:
            t = min(1.0, (it - self.decay_begin) / (self.decay_end - self.decay_begin))
            f *= 1.0 - (1.0 - self.end_factor) * t
        return f * self.scale

    def __repr__(self) -> str:
        keys = ('start_iter', 'warmup_iters', 'decay_begin', 'decay_end', 'end_factor', 'stop_iter',
                'stop_epoch', 'scale')
        return 'LossSchedule(' + ', '.join(f'{k}={getattr(self, k)}' for k in keys) + ')'


def build_schedule(cfg) -> Optional[LossSchedule]:
    """Build a :class:`LossSchedule` from a dict (``None`` -> no schedule).

    Args:
        cfg (dict | LossSchedule | None): schedule keywords.

    Returns:
        LossSchedule | None
    """
    if cfg is None or isinstance(cfg, LossSchedule):
        return cfg
    if not isinstance(cfg, dict):
        raise TypeError(f'schedule must be a dict of LossSchedule arguments, got {cfg!r}.')
    cfg = dict(cfg)
    cfg.pop('type', None)
    try:
        return LossSchedule(**cfg)
    except TypeError as e:
        raise TypeError(f'bad schedule {cfg!r}: {e}; valid keys: warmup_iters, decay_begin, '
                        f'decay_end, end_factor, stop_iter, stop_epoch, scale.') from None
