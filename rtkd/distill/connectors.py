"""Connectors: small learned (or fixed) adapters applied to a tapped student feature.

A connector maps a student tap to the teacher's channel count and/or size before a loss sees
it. In a recipe they are keyed by tap name; a list chains several::

    connectors=dict(s_feat=[dict(type='ConvBNConnector', in_channels=128, out_channels=256),
                            dict(type='ResizeConnector', like='t_feat')])

Connectors are trained with the student (they live in the distiller's ``connectors``
ModuleDict, so they are in checkpoints) and dropped from the exported student checkpoint.
Every connector's ``forward(x, ref=None)`` takes the tapped tensor and, for connectors with a
``like`` tap, that tap's tensor as the size reference.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor


class BaseConnector(nn.Module):
    """Base class: ``forward(x, ref=None)``; ``like`` names the tap used as ``ref``.

    Args:
        like (str | None): name of a tap whose tensor is passed as ``ref``.
    """

    def __init__(self, like: Optional[str] = None) -> None:
        super().__init__()
        self.like = like

    def _check_channels(self, x: Tensor, expected: int) -> None:
        if x.dim() < 2 or x.shape[1] != expected:
            raise ValueError(f'{type(self).__name__} expects {expected} input channels but the '
                             f'tapped tensor has shape {tuple(x.shape)}; set in_channels='
                             f'{x.shape[1] if x.dim() > 1 else "?"}.')


@MODELS.register_module()
class ConvBNConnector(BaseConnector):
    """1x1 convolution + BatchNorm (the FitNets / OFD / CWD channel adapter).

    ``y = BN(W * x)`` with ``W`` a 1x1 conv ``in_channels -> out_channels`` (no bias).

    Args:
        in_channels (int): student channels.
        out_channels (int): teacher channels.
        norm (bool): add the BatchNorm (default True).
        init (str): the conv's initialisation: ``'pytorch'`` (default, PyTorch's
            Kaiming-uniform over fan-in) or ``'kaiming_fan_out'``, normal with std
            ``sqrt(2 / (k * k * out_channels))``, as the official OFD code builds its connectors
            (the BN starts at weight 1, bias 0 either way).
        like (str | None): unused, kept for a uniform interface.
    """

    INITS = ('pytorch', 'kaiming_fan_out')

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm: bool = True,
                 init: str = 'pytorch',
                 like: Optional[str] = None) -> None:
        super().__init__(like)
        if init not in self.INITS:
            raise ValueError(f'ConvBNConnector: init must be one of {self.INITS}, got {init!r}.')
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=not norm)
        if init == 'kaiming_fan_out':
            nn.init.kaiming_normal_(self.conv.weight, mode='fan_out', nonlinearity='relu')
            if self.conv.bias is not None:
                nn.init.zeros_(self.conv.bias)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: Tensor, ref: Optional[Tensor] = None) -> Tensor:
        """Adapt ``x`` (N x in_channels x H x W) to N x out_channels x H x W."""
        self._check_channels(x, self.in_channels)
        return self.bn(self.conv(x))


@MODELS.register_module()
class Conv3x3ReLUConnector(BaseConnector):
    """3x3 convolution + ReLU, the adaptation layer of FGFI (Wang et al., CVPR 2019).

    ``y = ReLU(W * x + b)`` with ``W`` a 3x3 conv (padding 1) ``in_channels -> out_channels``.

    Args:
        in_channels (int): student channels.
        out_channels (int): teacher channels.
        relu (bool): apply the ReLU (default True).
        init_std (float | None): ``None`` (default): PyTorch's conv initialisation. A float:
            the weight is drawn from a normal with this std truncated at +-2 std, the bias keeps
            PyTorch's default, as the official FGFI code initialises its adaptation layer
            (std 1e-4; it truncates by ``fmod(2)``, a wrap-around approximation of the same
            truncation).
        like (str | None): unused, kept for a uniform interface.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 relu: bool = True,
                 init_std: Optional[float] = None,
                 like: Optional[str] = None) -> None:
        super().__init__(like)
        if init_std is not None and not (isinstance(init_std, (int, float)) and init_std > 0):
            raise ValueError(f'Conv3x3ReLUConnector: init_std must be a positive float or None, '
                             f'got {init_std!r}.')
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        if init_std is not None:
            nn.init.trunc_normal_(self.conv.weight, 0.0, init_std, -2 * init_std, 2 * init_std)
        self.act = nn.ReLU(inplace=False) if relu else nn.Identity()

    def forward(self, x: Tensor, ref: Optional[Tensor] = None) -> Tensor:
        """Adapt ``x`` (N x in_channels x H x W) to N x out_channels x H x W."""
        self._check_channels(x, self.in_channels)
        return self.act(self.conv(x))


@MODELS.register_module()
class ResizeConnector(BaseConnector):
    """Resize (bilinear by default) to a fixed size or to the spatial size of another tap.

    Args:
        like (str | None): tap whose spatial size is the target (e.g. the teacher tap).
        size (Sequence[int] | None): fixed target (h, w) when ``like`` is not given.
        mode (str): interpolation mode for ``F.interpolate``.
        align_corners (bool): passed to ``F.interpolate`` for (bi)linear modes.
    """

    def __init__(self,
                 like: Optional[str] = None,
                 size: Optional[Sequence[int]] = None,
                 mode: str = 'bilinear',
                 align_corners: bool = False) -> None:
        super().__init__(like)
        if like is None and size is None:
            raise ValueError("ResizeConnector needs like='<tap name>' or size=(h, w).")
        self.size = tuple(size) if size is not None else None
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: Tensor, ref: Optional[Tensor] = None) -> Tensor:
        """Resize ``x`` (N x C x H x W) to ``ref``'s H x W or to ``size``."""
        size = tuple(ref.shape[2:]) if ref is not None else self.size
        if tuple(x.shape[2:]) == size:
            return x
        kw = dict(align_corners=self.align_corners) if 'linear' in self.mode or \
            self.mode == 'bicubic' else {}
        return F.interpolate(x, size=size, mode=self.mode, **kw)


def build_connector(cfg: Union[dict, Sequence[dict]]) -> nn.Module:
    """Build one connector from a dict, or a chain (``nn.Sequential``-like) from a list.

    Args:
        cfg (dict | list[dict]): connector config(s).

    Returns:
        nn.Module: a connector or a :class:`ConnectorChain`.
    """
    if isinstance(cfg, (list, tuple)):
        return ConnectorChain([build_connector(c) for c in cfg])
    if isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f"a connector must be a dict with a 'type' (or a list of them), "
                        f'got {cfg!r}.')
    if isinstance(cfg['type'], str) and MODELS.get(cfg['type']) is None:
        from .builder import close_registered_names
        close = close_registered_names(cfg['type'])
        raise KeyError(f"connector type {cfg['type']!r} is not registered" +
                       (f'; close registered names: {close}.' if close else '.'))
    return MODELS.build(cfg)


class ConnectorChain(nn.ModuleList):
    """Apply connectors in order; each receives the same ``ref`` resolution rule."""

    @property
    def likes(self) -> list:
        """Tap names the chain's members use as size reference."""
        return [getattr(m, 'like', None) for m in self]

    def forward(self, x: Tensor, refs: Optional[dict] = None) -> Tensor:  # type: ignore[override]
        """Apply each member; ``refs`` maps tap names to tensors for ``like`` lookups."""
        for m in self:
            like = getattr(m, 'like', None)
            x = m(x, refs.get(like) if (refs is not None and like) else None)
        return x


def build_tap_connectors(cfgs: Optional[dict], taps: Sequence[str], used: set,
                         parameter_free: dict) -> nn.ModuleDict:
    """Build the connectors of a distillation graph, keyed by tap name, and validate them.

    One rule for every distiller (offline, self, cohort): a connector must sit on a tap that
    exists and that some loss reads (an unused trainable connector breaks DDP), its ``like``
    references must be taps, and a tap that cannot learn (a frozen teacher's tap, a detached
    target) only takes parameter-free connectors.

    Args:
        cfgs (dict | None): tap name -> connector config, or a list of configs (a chain).
        taps (Sequence[str]): every tap name of the graph.
        used (set[str]): the taps some loss reads (student, teacher, mutual or extra inputs).
        parameter_free (dict[str, str]): tap -> why it cannot learn, ending with where learned
            connectors go (completes "... has trainable parameters, but the tap <reason>").

    Returns:
        nn.ModuleDict: tap name -> connector (or :class:`ConnectorChain`).
    """
    names = ', '.join(taps)
    connectors = nn.ModuleDict()
    for tap, cfg in (cfgs or {}).items():
        if tap not in taps:
            raise KeyError(f'connector key {tap!r} is not a tap; key connectors by tap name '
                           f'(taps: {names}).')
        if tap not in used:
            raise ValueError(f'connector on tap {tap!r} is not used by any loss; remove it '
                             f'(unused trainable parameters break DDP).')
        chain = build_connector(cfg if isinstance(cfg, (list, tuple)) else [cfg])
        for like in chain.likes:
            if like is not None and like not in taps:
                raise KeyError(f'connector on tap {tap!r} refers to like={like!r}, which is '
                               f'not a tap (taps: {names}).')
        if tap in parameter_free and any(p.requires_grad for p in chain.parameters()):
            raise ValueError(f'connector on tap {tap!r} has trainable parameters, but the tap '
                             f'{parameter_free[tap]} (connectors there must be parameter-free, '
                             f'e.g. ResizeConnector).')
        connectors[tap] = chain
    return connectors
