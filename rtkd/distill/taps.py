"""Feature taps: named views on module inputs/outputs of the student or the teacher.

Tap syntax (one string per tap)::

    '<side>:<dotted.module.name>[@<call>|@*][#in|#out][<index>]...'

* ``side`` is ``student`` or ``teacher``.
* ``dotted.module.name`` is a name from ``model.named_modules()`` (e.g. ``decode_head.conv_seg``,
  ``backbone.layer3.1``). The empty name (``'teacher:'``) taps the whole network.
* ``@<call>`` picks one call of a module that runs more than once per forward (a head shared
  over FPN levels, ``rpn_head.rpn_conv``, the ``relu`` of mmseg's ``BasicBlock``, used after
  ``bn1`` and after the residual sum): ``@0`` is the first call, ``@2`` the third, ``@-1`` the
  last. ``@*`` records every call, in call order, as a list. A tap without ``@`` needs its module
  to run exactly once per forward: a module called more than once is refused on the first step
  (the teacher's first forward runs to the end to count the calls), with the call count and
  the ``@`` to add.
* ``#out`` (default, also ``#output``) records what the module returns; ``#in`` (also ``#input``)
  records its positional inputs (a tuple, so ``#in`` alone means ``#in[0]``).
* ``[i]`` indexes into tuple/list outputs (repeat for nesting: ``[0][1]``; negative indices work);
  with ``@*`` the index applies to each call.

Examples: ``'student:decode_head.conv_seg'`` (logits), ``'student:decode_head.conv_seg#in'``
(the feature entering the classifier), ``'teacher:backbone[2]'`` (third backbone stage),
``'teacher:neck#out[0]'`` (first FPN level), ``'teacher:bbox_head.cls_convs.0@2'`` (the shared
head's first conv on the third FPN level), ``'teacher:rpn_head.rpn_conv@*'`` (a list, one entry
per level).

Recorded values are cloned (every tensor inside a tuple, list or dict too), so a later in-place
operation of the model does not change them. Hooks are registered once, at build time, and
record only while a :class:`TapSet` is ``active`` (the distillation forward); at validation/test
they do nothing. They are callable objects that hold their :class:`TapSet`, so
``copy.deepcopy`` of a model (EMA/SWA wrappers) gives hooks that record into the copy's TapSet.

Early stop (``stop_when_done``, the teacher): the forward is cut short once the selected call of
every tap fired. A tap with ``@-k`` or ``@*`` needs all calls, so the forward then runs to its
end.
"""
from __future__ import annotations

import difflib
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional, Union

import torch
import torch.nn as nn

SIDES = ('student', 'teacher')
ALL_CALLS = '*'
_TAP_RE = re.compile(r'^(?P<side>[a-z]+):(?P<module>[^#\[\]@]*)(?:@(?P<call>-?\d+|\*))?'
                     r'(?P<tail>(?:#(?P<io>in|input|out|output))?(?P<index>(?:\[-?\d+\])*))$')


class TeacherDone(BaseException):
    """Raised inside the teacher forward once every teacher tap fired (early stop).

    A ``BaseException``, not an ``Exception``: model code that wraps a call in
    ``try: ... except Exception:`` must not swallow it (the forward would go on, or take a
    fallback path).
    """


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
        call (int | str | None): which call of the module: an int (negative counts from the
            last), ``'*'`` (all calls, as a list) or None (the module must run once).
        tail (str): the ``#in|#out`` and index part of ``text``, as written.
    """

    name: str
    side: str
    module: str
    use_input: bool = False
    index: tuple = field(default_factory=tuple)
    text: str = ''
    call: Optional[Union[int, str]] = None
    tail: str = ''

    @classmethod
    def parse(cls, name: str, text: str) -> 'TapSpec':
        """Parse a tap string; fails with a one-line hint on bad syntax.

        Args:
            name (str): the tap's name.
            text (str): ``'<side>:<module>[@<call>|@*][#in|#out][i]...'``.

        Returns:
            TapSpec: the parsed tap.
        """
        if not isinstance(text, str):
            raise TypeError(f"tap {name!r} must be a string like 'student:decode_head.conv_seg', "
                            f'got {type(text).__name__}.')
        m = _TAP_RE.match(text.strip())
        if m is None or m.group('side') not in SIDES:
            raise ValueError(
                f"tap {name!r} = {text!r} is not valid; write '<student|teacher>:<dotted.module>"
                f"[@<call>|@*][#in|#out][index]', e.g. 'teacher:backbone[2]', "
                f"'student:decode_head.conv_seg#in' or 'teacher:rpn_head.rpn_conv@0'.")
        index = tuple(int(i) for i in re.findall(r'\[(-?\d+)\]', m.group('index')))
        use_input = (m.group('io') or 'out').startswith('in')
        if use_input and not index:
            index = (0, )
        call = m.group('call')
        if call is not None and call != ALL_CALLS:
            call = int(call)
        return cls(
            name=name,
            side=m.group('side'),
            module=m.group('module'),
            use_input=use_input,
            index=index,
            text=text,
            call=call,
            tail=m.group('tail'))

    def with_call(self, call: Union[int, str]) -> str:
        """The tap string with ``@<call>`` (for messages).

        Args:
            call (int | str): the call to write (an int or ``'*'``).

        Returns:
            str: e.g. ``'teacher:bbox_head.cls_convs.0@2#out'``.
        """
        return f'{self.side}:{self.module}@{call}{self.tail}'

    @property
    def needs_all_calls(self) -> bool:
        """Whether the value is known only at the end of the forward (``@*``, ``@-k``)."""
        return self.call == ALL_CALLS or (isinstance(self.call, int) and self.call < 0)


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
        close = [
            n for n in names if n.startswith(prefix + '.') and n.count('.') == prefix.count('.') + 1
        ][:12] if prefix else []
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


def protect(value: Any) -> Any:
    """Clone a recorded value, every tensor inside tuples, lists and dicts included.

    A later in-place operation of the model (e.g. ``ReLU(inplace=True)`` after a tapped BN, or
    ``outs[i] += ...`` on a tapped tuple) must not change what was recorded. Autograd history is
    kept (``clone`` is differentiable).

    Args:
        value (Any): what a hook saw.

    Returns:
        Any: the same structure with cloned tensors (other objects: their ``clone()`` if they
        have one, else unchanged).
    """
    if torch.is_tensor(value):
        return value.clone()
    if isinstance(value, tuple) and hasattr(value, '_fields'):  # namedtuple
        return type(value)(*(protect(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(protect(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, protect(v)) for k, v in value.items())
    return value.clone() if callable(getattr(value, 'clone', None)) else value


class _TapHook:
    """The forward (pre-)hook of one tap: a callable object holding its :class:`TapSet`.

    Unlike a closure, ``copy.deepcopy`` copies it (and, through the memo, points it at the
    copied TapSet), so a deep-copied model records into its own TapSet.

    Args:
        tapset (TapSet): where to record.
        spec (TapSpec): the tap.
    """

    def __init__(self, tapset: 'TapSet', spec: TapSpec) -> None:
        self.tapset = tapset
        self.spec = spec

    def __call__(self, module: nn.Module, args: tuple, output: Any = None) -> None:
        """Record ``args`` (``#in``) or ``output`` (``#out``) of one call."""
        self.tapset._record(self.spec, args if self.spec.use_input else output)


class TapSet:
    """Forward hooks for a group of taps on one network, recording only while active.

    Every call of a tapped module is counted; what is kept is the call the tap selects (see the
    module docstring). :meth:`recording` returns the selected values and refuses an ambiguous
    tap (module called more than once, no ``@`` given).

    Args:
        model (nn.Module): the network the taps belong to.
        specs (list[TapSpec]): taps on this network.
        what (str): how to call the network in error messages (e.g. ``'student'``).
        stop_when_done (bool): raise :class:`TeacherDone` once the selected call of every tap
            fired (to cut the forward short; the caller catches it). Taps without ``@`` count
            as done after their first call only once a complete forward showed that their
            module runs once, so with such taps the first forward runs to its end.
    """

    def __init__(self,
                 model: nn.Module,
                 specs: list,
                 what: str,
                 stop_when_done: bool = False) -> None:
        self.specs = list(specs)
        self.what = what
        self.stop_when_done = stop_when_done
        self.active = False
        self.records: Dict[str, Any] = {}  # selected values of the running forward
        self._counts: Dict[str, int] = {}
        self._stopped = False
        # taps without '@' may count as done after one call once a full forward showed
        # that their module runs only once
        self._single_call_checked = not any(sp.call is None for sp in self.specs)
        self._handles = []
        for spec in self.specs:
            module = resolve_module(model, spec.module, what)
            hook = _TapHook(self, spec)
            if spec.use_input:
                h = module.register_forward_pre_hook(hook)
            else:
                h = module.register_forward_hook(hook)
            self._handles.append(h)

    # -- recording ------------------------------------------------------------------------
    def _record(self, spec: TapSpec, value: Any) -> None:
        if not self.active:
            return
        k = self._counts[spec.name]
        self._counts[spec.name] = k + 1
        if spec.needs_all_calls or k == (spec.call or 0):  # a call this tap keeps
            value = protect(_select(value, spec.index, spec))
            if spec.needs_all_calls:
                self.records.setdefault(spec.name, []).append(value)
            else:
                self.records[spec.name] = value
        if self.stop_when_done and all(self._done(sp) for sp in self.specs):
            self._stopped = True
            raise TeacherDone

    def _done(self, spec: TapSpec) -> bool:
        n = self._counts[spec.name]
        if spec.call is None:
            return n >= 1 and self._single_call_checked
        if spec.needs_all_calls:
            return False
        return n > spec.call

    def _collect(self) -> Dict[str, Any]:
        """Selected values of the finished forward; refuses ambiguous or missing calls."""
        out = {}
        for spec in self.specs:
            n = self._counts[spec.name]
            if n == 0:
                continue  # never fired: the distiller says which module did not run
            if spec.call is None and n > 1:
                raise ValueError(
                    f'tap {spec.name!r} = {spec.text!r} is ambiguous: module {spec.module!r} '
                    f'is called {n} times per {self.what} forward; select one call with '
                    f'@<call> (0..{n - 1}, e.g. {spec.with_call(0)!r}, @-1 for the last) or '
                    f'all of them as a list with {spec.with_call(ALL_CALLS)!r}.')
            values = self.records.get(spec.name)
            if spec.call == ALL_CALLS:
                out[spec.name] = values
                continue
            if spec.needs_all_calls:  # @-k: known at the end of the forward
                found = -spec.call <= n
                value = values[spec.call] if found else None
            else:
                found = spec.name in self.records
                value = values
            if not found:
                raise ValueError(
                    f'tap {spec.name!r} = {spec.text!r} selects call {spec.call} but module '
                    f'{spec.module!r} is called {n} times per {self.what} forward; select a '
                    f'call in {-n}..{n - 1}.')
            out[spec.name] = value
        if not self._stopped:  # a complete forward: the call counts are exact
            self._single_call_checked = True
        return out

    @contextmanager
    def recording(self) -> Iterator[dict]:
        """Activate the hooks for one forward.

        Yields:
            dict: empty during the forward; when the ``with`` body ends without an error it is
            filled with tap name -> selected value (taps that never fired are left out).
        """
        records: Dict[str, Any] = {}
        self.records = {}
        self._counts = {sp.name: 0 for sp in self.specs}
        self._stopped = False
        self.active = True
        try:
            yield records
            self.active = False
            records.update(self._collect())
        finally:
            self.active = False
            self.records = {}  # the caller keeps ``records``; drop our reference (graphs)

    def remove(self) -> None:
        """Remove all hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []
