"""The distillation graph's building blocks: loss entries, what a loss is, zero terms, shape errors.

A recipe's graph is ``taps -> connectors -> losses``: every loss entry names two taps
(``student=``, ``teacher=``) and, for each name in its class's ``extra_inputs``, a tap or one of
:data:`SPECIAL_INPUTS`. :class:`~rtkd.distill.Distiller` and
:class:`~rtkd.distill.CohortDistiller` build their entries with the functions here, so both
validate a recipe the same way and with the same messages.

What a loss is, is decided by its class (:mod:`rtkd.distill.losses.base`), never by probing its
attributes: :func:`is_adversarial` is ``isinstance(loss, AdversarialDistillLoss)`` and only a
:class:`~rtkd.distill.losses.base.BaseDistillLoss` gets its ``setup(distiller)`` call
(:func:`setup_hook`). A third-party loss with the same ``forward`` still works; it has no setup
and is never adversarial.

Shape errors (:class:`ShapeReport`): on a batch, every loss whose taps cannot be compared adds
one line; the distiller raises once, listing all of them and one ``connectors=dict(...)`` fix
that covers every student tap (and says so when one student tap would need two different
connectors).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from .losses.base import AdversarialDistillLoss, BaseDistillLoss

#: extra inputs a loss may name that are not taps
SPECIAL_INPUTS = ('inputs', 'data_samples')


def check_loss_name(name: str, example: str = 'loss_cwd') -> None:
    """Loss names must contain ``'loss'`` (the Runner sums those) and no dots.

    Raises:
        ValueError: when ``name`` is not valid.
    """
    if not isinstance(name, str) or 'loss' not in name or '.' in name:
        raise ValueError(f"loss name {name!r} must contain 'loss' and no dots (e.g. "
                         f"'{example}'), so the Runner adds it to the total loss.")


def loss_class(name: str, loss_type: Any) -> type:
    """The class of a loss entry's ``type`` (a class or a registered name).

    Raises:
        KeyError: when the type is not registered (with the close registered names).
    """
    cls = loss_type if isinstance(loss_type, type) else MODELS.get(loss_type)
    if cls is None:
        from .builder import close_registered_names
        close = close_registered_names(loss_type)
        raise KeyError(f'loss {name!r}: type {loss_type!r} is not registered; ' + (
            f'close registered names: {close}' if close else 'is rtkd imported (custom_imports)?') +
                       '.')
    return cls


def map_extra_inputs(name: str, cls: type, cfg: dict, taps: Sequence[str]) -> Dict[str, str]:
    """Which tap (or special input) feeds each of ``cls.extra_inputs``; pops the mapped keys.

    Args:
        name (str): the loss entry's name.
        cls (type): the loss class.
        cfg (dict): the loss config (``<extra>='<tap>'`` entries are popped).
        taps (Sequence[str]): the recipe's tap names.

    Returns:
        dict[str, str]: extra input name -> tap name or ``'inputs'`` / ``'data_samples'``.

    Raises:
        KeyError: when a mapped tap does not exist or an extra input has no source.
    """
    extras = {}
    for extra in getattr(cls, 'extra_inputs', ()):
        if extra in cfg:
            src = cfg.pop(extra)
            if not isinstance(src, str) or src not in taps:
                raise KeyError(f'loss {name!r} maps {extra}={src!r}, which is not a tap; define '
                               f'it in taps= or use one of: {", ".join(taps)}.')
            extras[extra] = src
        elif extra in SPECIAL_INPUTS or extra in taps:
            extras[extra] = extra
        else:
            raise KeyError(f'loss {name!r} ({cls.__name__}) needs the extra input '
                           f"{extra!r}; add {extra}='<tap name>' to its config.")
    return extras


def is_adversarial(loss: nn.Module) -> bool:
    """Whether a loss owns a discriminator trained by the critic step."""
    return isinstance(loss, AdversarialDistillLoss)


def setup_hook(loss: nn.Module):
    """The loss's ``setup(distiller)`` hook, or None (not a BaseDistillLoss: no setup)."""
    return loss.setup if isinstance(loss, BaseDistillLoss) else None


def detached(value: Any) -> Any:
    """``value`` detached from the graph (tensors, and tensors in lists/tuples: ``@*`` taps)."""
    if torch.is_tensor(value):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(detached(v) for v in value)
    return value


def zero_term(params: Iterable[nn.Parameter], ref: Tensor) -> Tensor:
    """A 0 that touches every trainable parameter in ``params`` (DDP then sees them used).

    Args:
        params (Iterable[nn.Parameter]): parameters of a switched-off loss and its connectors.
        ref (Tensor): any tensor of the step (device and dtype of the 0).

    Returns:
        Tensor: scalar 0 with a (zero) gradient path to every trainable parameter.
    """
    zero = ref.new_zeros(())
    for p in params:
        if p.requires_grad:
            zero = zero + p.reshape(-1)[0] * 0
    return zero


def _shape(v: Any) -> tuple:
    return tuple(v.shape) if torch.is_tensor(v) else ()


class ShapeReport:
    """Shape problems of one batch, collected over every loss, raised once.

    Each problem is one line ``loss '<name>': ...``; :meth:`raise_if_any` raises one
    ``ValueError`` listing them all, followed by one ``add connectors=dict(...)`` fix for every
    student tap that a connector can adapt. A student tap compared with teacher taps of two
    different shapes cannot be fixed by one connector chain: the message says so and names
    the way out (a second tap on the same module) instead of two contradicting hints.

    Args:
        tap_texts (dict[str, str] | None): tap name -> tap string (used in the hints).
    """

    def __init__(self, tap_texts: Optional[Dict[str, str]] = None) -> None:
        self.tap_texts = dict(tap_texts or {})
        self.lines: List[str] = []
        self.cause: Optional[BaseException] = None  # the first loss's own error (chained)
        self.fixes: Dict[str, Dict[str, Any]] = {}  # student tap -> {teacher shape: (fix, t_tap)}

    def add(self,
            line: str,
            s_tap: Optional[str] = None,
            fix: Optional[str] = None,
            t_tap: Optional[str] = None,
            t_shape: tuple = ()) -> None:
        """Record one loss's problem (and the connector that fixes it, if any)."""
        self.lines.append(line)
        if s_tap is not None and fix is not None:
            self.fixes.setdefault(s_tap, {}).setdefault(t_shape, (fix, t_tap))

    def __len__(self) -> int:
        return len(self.lines)

    def message(self) -> str:
        """The whole report (one sentence for one problem, a list for several)."""
        fixes, conflicts = {}, []
        for s_tap, by_shape in self.fixes.items():
            if len(by_shape) == 1:
                fixes[s_tap] = next(iter(by_shape.values()))[0]
            else:
                seen = ', '.join(f'{t!r} {shape}' for shape, (_, t) in by_shape.items())
                conflicts.append(
                    f'student tap {s_tap!r} is compared with teacher taps of different shapes '
                    f'({seen}): one connector chain cannot fit both; define one student tap per '
                    f'teacher shape (several taps may read the same module, e.g. '
                    f"{s_tap}_2={self.tap_texts.get(s_tap, '<the same tap string>')!r}) and "
                    f'give each its connector')
        tail = []
        if fixes:
            tail.append('add connectors=dict(' + ', '.join(f'{tap}={fix}'
                                                           for tap, fix in fixes.items()) + ')')
        tail += conflicts
        if len(self.lines) == 1:
            line = self.lines[0]
            return line + ('; ' + '; '.join(tail) if tail else '') + '.'
        head = (f'{len(self.lines)} distillation losses cannot compare their taps (every loss '
                f'was checked on this batch):\n' + '\n'.join(f'  - {ln}' for ln in self.lines))
        return head + ('\nFix: ' + '; '.join(tail) + '.' if tail else '')

    def raise_if_any(self) -> None:
        """Raise one ValueError with every collected problem (nothing when there is none)."""
        if self.lines:
            raise ValueError(self.message()) from self.cause


def describe_shape_error(report: ShapeReport, name: str, s_tap: str, t_tap: str, s: Tensor,
                         t: Tensor, *, logits: bool, student_classes: Optional[int],
                         loss_said: str) -> None:
    """Add one loss's shape problem to ``report``.

    Args:
        report (ShapeReport): where to add it.
        name (str): loss name.
        s_tap (str): student tap name (after connectors: ``s`` is what the loss got).
        t_tap (str): teacher tap name.
        s (Tensor): the student value the loss got.
        t (Tensor): the teacher value the loss got.
        logits (bool): both taps are class-score outputs (``...conv_seg`` outputs).
        student_classes (int | None): the student's ``decode_head.num_classes``.
        loss_said (str): the loss's own error message (used when no connector can help).
    """
    if logits and s.dim() > 1 and t.dim() > 1 and s.shape[1] != t.shape[1] and \
            student_classes == s.shape[1]:
        # class scores cannot be adapted by a connector: the teacher predicts other classes
        report.add(f'loss {name!r}: the teacher predicts {t.shape[1]} classes but the student '
                   f'{s.shape[1]} ({t.shape[1]} vs {s.shape[1]} classes: set the teacher\'s '
                   f"num_classes (teacher=dict(..., cfg_options={{'model.decode_head."
                   f"num_classes': {s.shape[1]}}}) and a checkpoint trained that way, or pick a "
                   f'teacher trained on this dataset)')
        return
    line = (f'loss {name!r}: student tap {s_tap!r} has shape {_shape(s)} but teacher tap '
            f'{t_tap!r} has shape {_shape(t)}')
    fixes = []
    same_layout = s.dim() == t.dim() and s.dim() > 1 and s.shape[0] == t.shape[0]
    if same_layout and s.shape[1] != t.shape[1]:
        fixes.append(f"dict(type='ConvBNConnector', in_channels={s.shape[1]}, "
                     f'out_channels={t.shape[1]})')
    if same_layout and s.dim() > 2 and s.shape[2:] != t.shape[2:]:
        fixes.append(f"dict(type='ResizeConnector', like={t_tap!r})")
    if not fixes:  # no connector adapts this (batch size, number of dims): the loss's words
        report.add(f'{line} ({loss_said})')
        return
    fix = fixes[0] if len(fixes) == 1 else '[' + ', '.join(fixes) + ']'
    report.add(line, s_tap=s_tap, fix=fix, t_tap=t_tap, t_shape=_shape(t))
