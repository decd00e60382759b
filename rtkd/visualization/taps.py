"""Record a module's output by its dotted name (``decode_head.conv_seg``, ``backbone[2]``).

A small, self-contained forward-hook helper for the analysis tools (the distiller has its own
taps; the tools must also work on plain mmseg models).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

class TapError(ValueError):
    """A tapped module's output cannot be picked as asked (wrong ``[i]`` or not a tensor)."""


_INDEXED = re.compile(r'^(?P<name>.*?)(?P<idx>(\[-?\d+\])*)$')


def parse_tap(spec: str) -> Tuple[str, List[int]]:
    """Split ``'backbone[2]'`` into the module name and the output indices.

    Args:
        spec (str): dotted module name, optionally followed by ``[i]`` indices that pick an
            element of a tuple/list output (``neck[0]``); ``''`` names the whole model.

    Returns:
        tuple[str, list[int]]: module name and indices.
    """
    m = _INDEXED.match(spec.strip())
    name = m.group('name')
    idx = [int(i) for i in re.findall(r'\[(-?\d+)\]', m.group('idx'))]
    return name, idx


def find_module(model: nn.Module, name: str, what: str = 'model') -> nn.Module:
    """Return ``model``'s submodule called ``name``; fail listing close names otherwise.

    The same lookup (and message) as the distiller's taps: see
    :func:`rtkd.distill.taps.resolve_module`.

    Args:
        model (nn.Module): the network.
        name (str): dotted name as in ``model.named_modules()``.
        what (str): how to call the model in the error message (e.g. ``'teacher'``).

    Returns:
        nn.Module: the submodule.

    Raises:
        KeyError: no such module; the message lists the closest valid names.
    """
    from rtkd.distill.taps import resolve_module
    return resolve_module(model, name, what)


def _pick(out: Any, idx: List[int], spec: str) -> torch.Tensor:
    for i in idx:
        if not isinstance(out, (tuple, list)):
            raise TapError(f'tap {spec!r}: output is a {type(out).__name__}, not a tuple/list; '
                             'drop the [index].')
        if not -len(out) <= i < len(out):
            raise TapError(f'tap {spec!r}: index {i} out of range for an output of '
                             f'{len(out)} elements.')
        out = out[i]
    if isinstance(out, (tuple, list)):
        raise TapError(f'tap {spec!r} outputs a {type(out).__name__} of {len(out)} elements; '
                        f'pick one with {spec}[i].')
    if not isinstance(out, torch.Tensor):
        raise TapError(f'tap {spec!r} outputs a {type(out).__name__}, not a tensor.')
    return out


class OutputRecorder:
    """Context manager that keeps the last output of named modules during forward passes.

    Example::

        with OutputRecorder(model, ['decode_head.conv_seg']) as rec:
            model(...)
        logits = rec['decode_head.conv_seg']

    Args:
        model (nn.Module): the network.
        specs (list[str]): tap specs (see :func:`parse_tap`).
        what (str): the model's role, used in error messages.
    """

    def __init__(self, model: nn.Module, specs: List[str], what: str = 'model') -> None:
        self.model = model
        self.specs = list(specs)
        self.what = what
        self.outputs: Dict[str, torch.Tensor] = {}
        self._handles = []
        self._targets = {}
        for spec in self.specs:  # resolve now: wrong names fail before any forward pass
            name, idx = parse_tap(spec)
            self._targets[spec] = (find_module(model, name, what), idx)

    def __enter__(self) -> 'OutputRecorder':
        for spec, (module, idx) in self._targets.items():
            def hook(_m, _inp, out, spec=spec, idx=idx):
                self.outputs[spec] = _pick(out, idx, spec).detach()
            self._handles.append(module.register_forward_hook(hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __getitem__(self, spec: str) -> torch.Tensor:
        if spec not in self.outputs:
            raise KeyError(f'{self.what}: module {spec!r} did not run during the forward pass; '
                           'tap a module on the inference path.')
        return self.outputs[spec]
