"""Feature taps: named views on module inputs/outputs of the student or the teacher.

Tap syntax (one string per tap)::

    '<side>:<dotted.module.name>[#in|#out][<index>]...'

* ``side`` is ``student`` or ``teacher``.
* ``dotted.module.name`` is a name from ``model.named_modules()`` (e.g. ``decode_head.conv_seg``,
  ``backbone.layer3.1``). The empty name (``'teacher:'``) taps the whole network.
* ``#out`` (default, also ``#output``) records what the module returns; ``#in`` (also ``#input``)
  records its positional inputs (a tuple, so ``#in`` alone means ``#in[0]``).
* ``[i]`` indexes into tuple/list outputs (repeat for nesting: ``[0][1]``; negative indices work).

Examples: ``'student:decode_head.conv_seg'`` (logits), ``'student:decode_head.conv_seg#in'``
(the feature entering the classifier), ``'teacher:backbone[2]'`` (third backbone stage),
``'teacher:neck#out[0]'`` (first FPN level).

Hooks are registered once, at build time, and record only while a :class:`TapSet` is
``active`` (the distillation forward); at validation/test they do nothing.
"""
from __future__ import annotations

import difflib
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch.nn as nn

SIDES = ('student', 'teacher')
_TAP_RE = re.compile(r'^(?P<side>[a-z]+):(?P<module>[^#\[\]]*)'
                     r'(?:#(?P<io>in|input|out|output))?(?P<index>(?:\[-?\d+\])*)$')


class TeacherDone(Exception):
    """Raised inside the teacher forward once every teacher tap fired (early stop)."""


@dataclass
class TapSpec:
    """A parsed tap string.

    Args:
        name (str): the tap's name in the config (key of ``taps``).
        side (str): ``'student'`` or ``'teacher'``.
        module (str): dotted module name ('' = the whole network).
        use_input (bool): record the module's inputs instead of its output.
        index (tuple[int, ...]): indices applied to the recorded value.
        text (str): the original string.
    """

    name: str
    side: str
    module: str
    use_input: bool = False
    index: tuple = field(default_factory=tuple)
    text: str = ''

    @classmethod
    def parse(cls, name: str, text: str) -> 'TapSpec':
        """Parse ``'<side>:<module>[#in|#out][i]...'``; fails with a one-line hint on bad syntax."""
        if not isinstance(text, str):
            raise TypeError(f"tap {name!r} must be a string like 'student:decode_head.conv_seg', "
                            f'got {type(text).__name__}.')
        m = _TAP_RE.match(text.strip())
        if m is None or m.group('side') not in SIDES:
            raise ValueError(
                f"tap {name!r} = {text!r} is not valid; write '<student|teacher>:<dotted.module>"
                f"[#in|#out][index]', e.g. 'teacher:backbone[2]' or "
                f"'student:decode_head.conv_seg#in'.")
        index = tuple(int(i) for i in re.findall(r'\[(-?\d+)\]', m.group('index')))
        use_input = (m.group('io') or 'out').startswith('in')
        if use_input and not index:
            index = (0, )
        return cls(name=name, side=m.group('side'), module=m.group('module'),
                   use_input=use_input, index=index, text=text)


def resolve_module(model: nn.Module, dotted: str, what: str = 'model') -> nn.Module:
    """Return ``model``'s submodule called ``dotted``; unknown names list close valid names.

    Args:
        model (nn.Module): the network.
        dotted (str): dotted name as in ``named_modules()`` ('' = ``model``).
        what (str): how to call the network in the error message.

    Returns:
        nn.Module: the submodule.
    """
    modules = dict(model.named_modules())
    if dotted in modules:
        return modules[dotted]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(dotted, names, n=6, cutoff=0.5)
    if not close:  # fall back to the children of the longest existing prefix
        prefix = dotted.rsplit('.', 1)[0] if '.' in dotted else ''
        while prefix and prefix not in modules:
            prefix = prefix.rsplit('.', 1)[0] if '.' in prefix else ''
        close = [n for n in names if n.startswith(prefix + '.')
                 and n.count('.') == prefix.count('.') + 1][:12] if prefix else []
    hint = ', '.join(close) if close else ', '.join(n for n in names if '.' not in n)
    raise KeyError(f'{what} has no module {dotted!r}; close valid names: {hint}.')


def _select(value: Any, index: tuple, spec: TapSpec) -> Any:
    for i in index:
        try:
            value = value[i]
        except (IndexError, TypeError, KeyError):
            kind = type(value).__name__
            n = len(value) if hasattr(value, '__len__') else 'no'
            raise IndexError(f'tap {spec.name!r} = {spec.text!r}: cannot index a {kind} with '
                             f'{n} items by [{i}]; fix the index in the tap string.') from None
    return value


class TapSet:
    """Forward hooks for a group of taps on one network, recording only while active.

    Args:
        model (nn.Module): the network the taps belong to.
        specs (list[TapSpec]): taps on this network.
        what (str): how to call the network in error messages (e.g. ``'student'``).
        stop_when_done (bool): raise :class:`TeacherDone` once all taps fired (to cut the
            forward short; the caller catches it).
    """

    def __init__(self, model: nn.Module, specs: list, what: str,
                 stop_when_done: bool = False) -> None:
        self.specs = list(specs)
        self.what = what
        self.stop_when_done = stop_when_done
        self.active = False
        self.records: dict = {}
        self._handles = []
        for spec in self.specs:
            module = resolve_module(model, spec.module, what)
            if spec.use_input:
                h = module.register_forward_pre_hook(self._make_hook(spec, True))
            else:
                h = module.register_forward_hook(self._make_hook(spec, False))
            self._handles.append(h)

    def _make_hook(self, spec: TapSpec, is_input: bool) -> Callable:
        def hook(module, args, output=None):
            if not self.active:
                return None
            value = args if is_input else output
            value = _select(value, spec.index, spec)
            # clone: a later in-place op (e.g. ReLU(inplace=True) after a tapped BN) must not
            # change what was recorded
            self.records[spec.name] = value.clone() if hasattr(value, 'clone') else value
            if self.stop_when_done and len(self.records) == len(self.specs):
                raise TeacherDone
            return None

        if is_input:
            return lambda module, args: hook(module, args)
        return hook

    @contextmanager
    def recording(self) -> Iterator[dict]:
        """Activate the hooks; yields the dict the taps are written to (cleared on entry)."""
        records = self.records = {}
        self.active = True
        try:
            yield records
        finally:
            self.active = False
            self.records = {}  # the caller keeps ``records``; drop our reference (graphs)

    def remove(self) -> None:
        """Remove all hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []
