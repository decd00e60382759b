"""ResNet encoder for LinkNet / FANet: mmseg's ``ResNet`` plus stem output and safe pretraining.

LinkNet (Chaurasia & Culurciello, "LinkNet: Exploiting Encoder Representations for Efficient
Semantic Segmentation", VCIP 2017, arXiv 1707.03718) adds the *input* of every encoder block to
the output of the matching decoder block. The input of the first block is the stem output
(conv 7x7 s2 + BN + ReLU + max-pool s2, at 1/4 resolution), which mmseg's ``ResNet`` does not
return; :class:`RTResNet` returns it in front of the four stage outputs when ``out_stem=True``.

Both networks start from ImageNet ResNet-18/34 weights (plain stem, so torchvision checkpoints
fit key for key). Machines without network access cannot download them: :class:`RTResNet` then
falls back to random initialisation with a warning instead of crashing the run.
"""
from __future__ import annotations

import os.path as osp
import socket
import warnings
from typing import List, Tuple

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS

_DOWNLOAD_TIMEOUT_S = 60.0


def _random_init_cfg() -> List[dict]:
    """mmseg ResNet's own default initialisation (used when no pretrained weights are loaded)."""
    return [
        dict(type='Kaiming', layer='Conv2d'),
        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
    ]


def pretrained_or_random(module: torch.nn.Module) -> None:
    """Make ``module.init_cfg`` safe to apply: drop an unreachable remote ``Pretrained`` entry.

    A remote checkpoint (``torchvision://``, ``open-mmlab://``, ``http(s)://``) that cannot be
    fetched (no network, timeout, corrupt download) is replaced by random initialisation and a
    warning. A *local* checkpoint path that does not exist is a configuration error and raises.

    Args:
        module (nn.Module): a ``BaseModule`` whose ``init_cfg`` may hold a ``Pretrained`` entry.
    """
    cfgs = module.init_cfg
    if cfgs is None:
        return
    cfgs = [cfgs] if isinstance(cfgs, dict) else list(cfgs)
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    if not pretrained:
        return
    ckpt = pretrained[0].get('checkpoint')
    if not isinstance(ckpt, str) or not ckpt:
        raise ValueError(f'{type(module).__name__}: init_cfg Pretrained needs a checkpoint path or '
                         f'URL, got {ckpt!r}.')
    if '://' not in ckpt:
        if not osp.isfile(ckpt):
            raise FileNotFoundError(f'{type(module).__name__}: pretrained checkpoint '
                                    f'{osp.abspath(ckpt)!r} does not exist; '
                                    f'fix init_cfg.checkpoint.')
        return
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)  # a black-holed network must not hang the run
    try:
        CheckpointLoader.load_checkpoint(ckpt, map_location='cpu', logger='current')
    except (OSError, RuntimeError, ValueError) as err:  # URLError, timeouts, bad archives
        msg = (f'{type(module).__name__}: could not load pretrained weights {ckpt!r} '
               f'({type(err).__name__}: {err}); falling back to RANDOM initialisation. Put the '
               f'file in the torch hub cache or set init_cfg.checkpoint to a local path to use '
               f'them.')
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        print_log(msg, logger='current', level=30)
        module.init_cfg = [c for c in cfgs if c.get('type') != 'Pretrained'] or _random_init_cfg()
    finally:
        socket.setdefaulttimeout(old_timeout)


@MODELS.register_module()
class RTResNet(ResNet):
    """mmseg ``ResNet`` with an optional stem output and a no-network fallback for pretraining.

    All arguments of :class:`mmseg.models.backbones.ResNet` are accepted (``depth``, ``strides``,
    ``norm_cfg``, ``init_cfg`` ...); the defaults here select the plain (torchvision-compatible)
    ResNet-18: ``deep_stem=False``, ``style='pytorch'``, ``strides=(1, 2, 2, 2)``.
    FANet uses ``strides=(2, 2, 2, 2)`` (features at 1/8 .. 1/64).

    Args:
        depth (int): 18, 34, 50, 101 or 152. Default: 18.
        out_stem (bool): also return the stem output (after max-pool, ``stem_channels`` wide, 1/4
            resolution) as the first element. Default: False.
        **kwargs: forwarded to mmseg's ``ResNet``.
    """

    def __init__(self, depth: int = 18, out_stem: bool = False, **kwargs) -> None:
        kwargs.setdefault('deep_stem', False)
        kwargs.setdefault('style', 'pytorch')
        super().__init__(depth=depth, **kwargs)
        self.out_stem = out_stem

    def init_weights(self) -> None:
        """Initialise; an unreachable remote checkpoint degrades to random init with a warning."""
        pretrained_or_random(self)
        super().init_weights()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Run the stem and the residual stages.

        Args:
            x (Tensor): images, ``N x in_channels x H x W``.

        Returns:
            tuple[Tensor]: ``(stem, *stages)`` if ``out_stem`` else the outputs of ``out_indices``.
        """
        if x.dim() != 4 or x.shape[1] != self.conv1.in_channels:
            raise ValueError(f'{type(self).__name__} expects an N x {self.conv1.in_channels} x H '
                             f'x W image tensor, got shape {tuple(x.shape)}.')
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.maxpool(x)
        outs = [x] if self.out_stem else []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
