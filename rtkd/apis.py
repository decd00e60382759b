"""The one loading layer of rtkd: config paths, weights, models for inference, taps.

Every tool, the report, the benchmarks and the distiller's network builder
(:mod:`rtkd.distill.builder`) go through these functions, so a config path, a checkpoint and a
tap string mean the same thing everywhere.

* **Config paths** (:func:`resolve_config_path`, :func:`load_config`): a local file (absolute,
  relative to the current directory, then to the rtkd repository root, then to an optional
  ``base_dir`` such as the folder of the recipe that names it), or ``pkg::path`` (a config
  shipped with an installed OpenMMLab package, e.g. ``mmseg::fastscnn/...py``). A distillation
  recipe (``model.type == 'Distiller'``) resolves to its student's config with
  :func:`student_config`.
* **Weights** (:func:`load_weights`): one rule for every inference tool. ``module.`` (DDP) and
  ``student.`` (a whole distiller checkpoint) prefixes are stripped, other prefixed entries
  (connectors, critics, counters) are left out; only training-only ``auxiliary_head`` weights
  (and BN's ``num_batches_tracked``) may be missing; a shape mismatch is an error.
* **Models for inference** (:func:`init_segmentor`): ``mmseg.apis.init_model`` builds the model
  (no ``pretrained`` / ``init_cfg`` download, no ``train_cfg``, eval mode, ``model.cfg``), then
  SyncBN becomes BN (CPU), the weights are loaded by :func:`load_weights` and
  ``model.dataset_meta`` comes from the checkpoint's meta or the config's dataset.
* **Taps** (:func:`record_taps`): the distiller's tap grammar
  (``'<dotted.module>[@<call>|@*][#in|#out][i]'``, see :mod:`rtkd.distill.taps`) on a model used
  for inference, so ``#in``, ``@k`` and ``[i]`` work in the tools exactly as in a recipe.
"""
from __future__ import annotations

import copy
import os.path as osp
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Sequence, Union

import torch.nn as nn
from mmengine.config import Config, ConfigDict

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
"""The rtkd checkout (configs are resolved against it after the current directory)."""

_SPEC_KEYS = {'config', 'checkpoint', 'cfg_options', 'scope', 'model'}

__all__ = [
    'REPO_ROOT', 'resolve_config_path', 'resolve_checkpoint_path', 'load_config', 'normalize_spec',
    'is_distiller_config', 'student_config', 'dataset_meta_from_config', 'load_weights',
    'init_segmentor', 'record_taps'
]


def _candidates(path: str, base_dir: Optional[str] = None) -> list:
    if osp.isabs(path):
        return [path]
    tried = [osp.abspath(path), osp.join(REPO_ROOT, path)]
    if base_dir:
        tried.append(osp.join(base_dir, path))
    return tried


def resolve_config_path(path: str, what: str = 'config', base_dir: Optional[str] = None) -> str:
    """Find a config file (``pkg::`` paths pass through); one-sentence error when missing.

    Args:
        path (str): local path (absolute, relative to the current directory, to the repo root
            or to ``base_dir``) or ``pkg::path``.
        what (str): for the message, e.g. ``'teacher config'``.
        base_dir (str, optional): a last folder to try (e.g. the recipe's own folder).

    Returns:
        str: an absolute path or the ``pkg::path`` unchanged.

    Raises:
        FileNotFoundError: no candidate exists (the message lists them).
    """
    if not isinstance(path, str):
        raise TypeError(f'{what} must be a path string, got {type(path).__name__}.')
    if '::' in path and not osp.isfile(path):
        return path
    tried = _candidates(path, base_dir)
    for cand in tried:
        if osp.isfile(cand):
            return osp.abspath(cand)
    raise FileNotFoundError(f'{what} not found: tried {", ".join(repr(t) for t in tried)}; '
                            f'give a path relative to the current directory or the repo root.')


def resolve_checkpoint_path(path: str, what: str = 'model') -> str:
    """Local checkpoint lookup like :func:`resolve_config_path`; URLs pass through.

    Args:
        path (str): local path or URL.
        what (str): whose checkpoint, for the message (e.g. ``'teacher'``).

    Returns:
        str: an absolute path or the URL unchanged.
    """
    if '://' in path:
        return path
    tried = _candidates(path)
    for cand in tried:
        if osp.isfile(cand):
            return osp.abspath(cand)
    raise FileNotFoundError(f'{what} checkpoint not found: {tried[0]!r} does not exist; fix '
                            f'the checkpoint path (a local file or a URL).')


def load_config(config: Union[str, Config],
                what: str = 'config',
                base_dir: Optional[str] = None) -> Config:
    """Load a config from a local path, a ``pkg::path`` or pass a :class:`Config` through.

    Args:
        config (str | Config): what to load (see :func:`resolve_config_path`).
        what (str): for the message when the file is missing.
        base_dir (str, optional): extra folder to resolve a relative path against.

    Returns:
        Config: the parsed config (the same object when a Config is given).
    """
    if isinstance(config, Config):
        return config
    if not isinstance(config, str):
        raise TypeError(f'{what} must be a path or an mmengine Config, got '
                        f'{type(config).__name__}.')
    path = resolve_config_path(config, what, base_dir)
    if '::' in path and not osp.isfile(path):
        from mmengine.hub import get_config
        return get_config(path)
    return Config.fromfile(path)


def normalize_spec(spec, what: str) -> dict:
    """Turn a network spec into ``dict(config|model, checkpoint, cfg_options, scope)``.

    Accepted: a config path / ``pkg::path``; ``dict(config=..., checkpoint=..., cfg_options=...,
    scope=...)``; a model dict with ``type`` (optionally ``_scope_``); ``dict(model=...)``.

    Args:
        spec (str | dict): the spec.
        what (str): ``'student'`` or ``'teacher'`` (for messages).

    Returns:
        dict: the normalised spec (a copy).
    """
    if isinstance(spec, str):
        return dict(config=spec)
    if isinstance(spec, (dict, ConfigDict)):
        spec = dict(copy.deepcopy(spec))
        if 'type' in spec and 'config' not in spec:
            return dict(model=spec, scope=spec.pop('_scope_', None))
        unknown = set(spec) - _SPEC_KEYS
        if unknown or not ({'config', 'model'} & set(spec)):
            raise ValueError(f"{what} must be a config path, a model dict with 'type', or "
                             f"dict(config=..., checkpoint=...); got keys {sorted(spec)}.")
        return spec
    raise TypeError(f'{what} must be a config path or a dict, got {type(spec).__name__}.')


def is_distiller_config(cfg: Config) -> bool:
    """Whether ``cfg.model`` is a distiller (``type`` ending in ``Distiller``)."""
    model = cfg.get('model') or {}
    return str(model.get('type', '')).endswith('Distiller')


def student_config(cfg: Config) -> Config:
    """The student's own config inside a distillation recipe (inference and analysis).

    The recipe's ``model.student`` may be a config path (resolved as in
    :func:`resolve_config_path`, the recipe's folder tried last), ``dict(config=...,
    cfg_options=...)`` or a model dict (then the recipe itself, with ``model`` replaced, is the
    student's config). ``test_pipeline``, the val/test dataloaders and ``default_scope`` the
    student config lacks are taken from the recipe.

    Args:
        cfg (Config): a distillation recipe.

    Returns:
        Config: a config whose ``model`` is the student.
    """
    student = cfg.model.get('student')
    if student is None:
        raise ValueError(f'distillation config {cfg.filename!r} has no model.student; pass the '
                         'student config instead.')
    spec = normalize_spec(student, 'model.student')
    if 'config' in spec:
        near = osp.dirname(cfg.filename) if cfg.filename else None
        scfg = load_config(spec['config'], 'student config', base_dir=near)
        if spec.get('cfg_options'):
            scfg.merge_from_dict(dict(spec['cfg_options']))
    else:
        scfg = copy.deepcopy(cfg)
        scfg.model = ConfigDict(spec['model'])
    for key in ('test_pipeline', 'val_dataloader', 'test_dataloader', 'default_scope'):
        if key not in scfg and key in cfg:
            scfg[key] = copy.deepcopy(cfg[key])
    return scfg


def dataset_meta_from_config(cfg: Config) -> Optional[dict]:
    """Classes and palette of the dataset a config evaluates on.

    Args:
        cfg (Config): a full mmseg config.

    Returns:
        dict or None: ``{'classes': ..., 'palette': ...}``, or None when the config names none.
    """
    from mmseg.registry import DATASETS
    for key in ('val_dataloader', 'test_dataloader', 'train_dataloader'):
        ds = (cfg.get(key) or {}).get('dataset')
        while ds is not None and 'dataset' in ds and 'metainfo' not in ds:  # wrappers
            ds = ds['dataset']
        if not ds:
            continue
        meta = ds.get('metainfo')
        if meta and 'classes' in meta:
            return dict(classes=tuple(meta['classes']), palette=meta.get('palette'))
        kind = ds.get('type', '')
        cls = DATASETS.get(kind) if isinstance(kind, str) else kind
        if cls is not None and 'classes' in getattr(cls, 'METAINFO', {}):
            return dict(classes=tuple(cls.METAINFO['classes']), palette=cls.METAINFO.get('palette'))
    return None


def load_weights(model: nn.Module, checkpoint: str) -> dict:
    """Load a checkpoint into ``model`` and check that every weight used at inference is there.

    Accepts an mmengine checkpoint (``{'state_dict', 'meta', ...}``), a bare state dict, a DDP
    one (``module.`` prefix) or a distiller one (``student.`` prefix: the student is taken;
    connectors, critics and counters are left out). Entries the model does not have are ignored;
    only ``auxiliary_head`` weights (training-only) and ``num_batches_tracked`` may be missing.

    Args:
        model (nn.Module): the built model.
        checkpoint (str): local path or URL (read on CPU).

    Returns:
        dict: the loaded checkpoint (``ckpt['meta']['dataset_meta']`` when mmseg wrote it).

    Raises:
        FileNotFoundError: the local file does not exist.
        ValueError: the checkpoint does not hold the weights of this model.
    """
    import re

    import mmengine.runner.checkpoint as ckpt_mod

    import rtkd  # noqa: F401  (safe loader for rtkd checkpoints; unreadable files are named)
    from rtkd.distill.export import STUDENT_PREFIX, student_state_dict
    from rtkd.utils import check_file
    check_file(checkpoint, 'checkpoint')
    ckpt = ckpt_mod._load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {checkpoint!r} holds a {type(state).__name__}, not a state '
                         'dict; pass a checkpoint written by mmengine or torch.save(state_dict).')
    if any(k.startswith(STUDENT_PREFIX) or k.startswith('module.' + STUDENT_PREFIX) for k in state):
        state = student_state_dict(state)  # a distiller checkpoint: keep the student
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    missing = [
        k for k in own if k not in state and not k.startswith('auxiliary_head')
        and not k.endswith('num_batches_tracked')
    ]
    if missing:
        raise ValueError(
            f'checkpoint {checkpoint!r} does not fit this config: {len(missing)} of {len(own)} '
            f'weights are missing (e.g. {", ".join(missing[:3])}); pass the checkpoint that '
            'was trained with this config.')
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f'checkpoint {checkpoint!r} does not fit this config: shape mismatch '
                         f'for {", ".join(bad[:3])}; pass the checkpoint trained with it.')
    model.load_state_dict(state, strict=False)
    return ckpt if isinstance(ckpt, dict) else {'state_dict': ckpt}


def init_segmentor(config: Union[str, Config],
                   checkpoint: Optional[str] = None,
                   device: str = 'cpu',
                   cfg_options: Optional[dict] = None,
                   seed: Optional[int] = 0,
                   need_test_pipeline: bool = False) -> nn.Module:
    """Build an mmseg segmentor for inference, measurement or export.

    ``mmseg.apis.init_model`` builds it (``pretrained`` / backbone ``init_cfg`` / ``train_cfg``
    set to None, the config's ``default_scope``, eval mode, ``model.cfg``); on top of it:
    a distillation recipe gives its student (:func:`student_config`), SyncBN layers become BN
    (they cannot run on CPU), weights are loaded by :func:`load_weights` (not by
    ``init_model``, whose loader accepts neither distiller checkpoints nor missing aux heads) and
    ``model.dataset_meta`` comes from the checkpoint's meta, else from the config's dataset, so
    ``mmseg.apis.inference_model`` works.

    Args:
        config (str | Config): segmentor config or distillation recipe (path, ``pkg::path`` or
            a Config; a Config is not modified).
        checkpoint (str, optional): weights (local path or URL); None keeps the initialisation.
        device (str): torch device.
        cfg_options (dict, optional): overrides in ``merge_from_dict`` form.
        seed (int, optional): ``torch.manual_seed`` before the build (reproducible random
            weights); None leaves the RNG alone.
        need_test_pipeline (bool): fail early when the config has no ``test_pipeline``
            (``inference_model`` needs one).

    Returns:
        nn.Module: the segmentor (an ``mmseg.models.segmentors.BaseSegmentor``), in eval mode.
    """
    import torch
    from mmengine.model import revert_sync_batchnorm
    from mmseg.apis import init_model
    from mmseg.models.segmentors import BaseSegmentor

    import rtkd  # noqa: F401  (registers the project's models and safe checkpoint loading)
    name = config if isinstance(config, str) else (config.filename or 'the given Config')
    cfg = copy.deepcopy(load_config(config))
    if is_distiller_config(cfg):
        cfg = student_config(cfg)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    if 'model' not in cfg:
        raise ValueError(f'config {name!r} has no `model`; pass a full segmentor config.')
    if need_test_pipeline and 'test_pipeline' not in cfg:
        raise ValueError(f'config {name!r} defines no test_pipeline; inference needs one '
                         '(inherit a dataset _base_ file).')
    imports = cfg.get('custom_imports')
    if imports:
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**imports)
    if seed is not None:
        torch.manual_seed(seed)
    model = init_model(cfg, checkpoint=None, device='cpu')
    if not isinstance(model, BaseSegmentor):
        raise ValueError(
            f'config {name!r} builds a {type(model).__name__}, not an mmseg segmentor; pass a '
            'segmentor config or a distillation recipe with a segmentor student.')
    model = revert_sync_batchnorm(model)
    meta = None
    if checkpoint:
        meta = (load_weights(model, checkpoint).get('meta') or {}).get('dataset_meta')
    model.dataset_meta = meta or dataset_meta_from_config(cfg) or {}
    model.cfg = cfg
    return model.to(device).eval()


@contextmanager
def record_taps(model: nn.Module,
                taps: Union[str, Sequence[str], Dict[str, str]],
                side: str = 'student') -> Iterator[Dict[str, Any]]:
    """Record tapped values of a model during the forward passes inside the ``with`` body.

    The distiller's tap grammar and code (:class:`rtkd.distill.taps.TapSet`): names are
    resolved (close valid names listed on a typo) before any forward pass; ``@k`` picks a call,
    ``#in`` the module's input, ``[i]`` an element (a module called more than once without
    ``@`` is refused when the body ends). The hooks are removed afterwards.

    Example::

        with record_taps(model, 'decode_head.conv_seg#in') as rec:
            inference_model(model, img)
        feat = rec['decode_head.conv_seg#in']

    Args:
        model (nn.Module): the network.
        taps (str | list[str] | dict[str, str]): tap strings without or with the side prefix
            (``'decode_head.conv_seg'`` or ``'student:decode_head.conv_seg'``); a dict maps
            result names to tap strings, otherwise each string is its own name.
        side (str): ``'student'`` or ``'teacher'`` (the prefix added to bare tap strings, and
            how the model is called in error messages).

    Yields:
        dict: filled with tap name -> recorded value once the body ends without an error.
    """
    from rtkd.distill.taps import SIDES, TapSet, TapSpec
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}.")
    if isinstance(taps, str):
        taps = [taps]
    named = dict(taps) if isinstance(taps, dict) else {t: t for t in taps}
    specs = []
    for name, text in named.items():
        full = text if text.split(':', 1)[0] in SIDES and ':' in text else f'{side}:{text}'
        specs.append(TapSpec.parse(name, full))
    tapset = TapSet(model, specs, side)
    try:
        with tapset.recording() as rec:
            yield rec
        missing = [sp.text for sp in specs if sp.name not in rec]
        if missing:
            raise KeyError(f'{side}: {", ".join(map(repr, missing))} did not run during the '
                           'forward pass; tap a module on the inference path.')
    finally:
        if callable(getattr(tapset, 'remove', None)):
            tapset.remove()
        else:
            for h in getattr(tapset, '_handles', []):
                h.remove()
