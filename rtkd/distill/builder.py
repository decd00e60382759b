"""Build a network (student or teacher) for training from a config path, ``pkg::path``, or a dict.

Paths and specs are resolved by :mod:`rtkd.apis` (the one loading layer; inference models are
built there too, by :func:`rtkd.apis.init_segmentor`).

Accepted specs (``what`` is ``'student'`` or ``'teacher'``):

* ``'path/to/config.py'`` - a config file; its ``model`` is built in the scope of its own
  ``default_scope``. Relative paths are tried against the current directory, then the rtkd
  repository root (configs are run from there), e.g. ``'../shared/teachers/x.py'``.
* ``'mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py'`` - a config shipped with
  an installed OpenMMLab package.
* ``dict(config=<path>, checkpoint=<path or URL>, cfg_options=dict(...), scope='mmseg')`` -
  the same with weights and config overrides (``cfg_options`` in ``--cfg-options`` form,
  e.g. ``{'model.decode_head.num_classes': 11}``).
* ``dict(type='EncoderDecoder', ...)`` - a model config; built in the current default scope
  (or its ``_scope_``). ``dict(model=dict(...), scope=..., checkpoint=...)`` is also accepted.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.registry import MODELS, DefaultScope

# Config paths, checkpoint paths and specs are resolved in one place, rtkd.apis; re-exported here
# for the distiller (and older imports).
from rtkd.apis import (REPO_ROOT, load_config, normalize_spec, resolve_checkpoint_path,
                       resolve_config_path)

__all__ = [
    'REPO_ROOT', 'build_network', 'close_registered_names', 'load_config', 'normalize_spec',
    'resolve_checkpoint_path', 'resolve_config_path'
]


def close_registered_names(type_name: str, n: int = 5) -> str:
    """Registered model-type names close to ``type_name`` (rtkd's losses and connectors live in
    mmengine's root ``MODELS``), for "unknown type" messages.

    Args:
        type_name (str): the misspelled type.
        n (int): how many names to list.

    Returns:
        str: ``'A, B, C'`` or ``''``.
    """
    import difflib
    names = list(MODELS.module_dict)
    close = difflib.get_close_matches(str(type_name), names, n=n, cutoff=0.5)
    if not close:
        low = str(type_name).lower()
        close = [k for k in names if low[:4] and low[:4] in k.lower()][:n]
    return ', '.join(close)


def build_network(spec, what: str) -> Tuple[nn.Module, Optional[str], str]:
    """Build a network from a spec in the scope of its own config.

    Args:
        spec (str | dict): see the module docstring.
        what (str): ``'student'`` or ``'teacher'`` (for messages).

    Returns:
        tuple: (model, checkpoint or None, scope name).
    """
    spec = normalize_spec(spec, what)
    ckpt = spec.get('checkpoint')
    if ckpt is not None:
        ckpt = resolve_checkpoint_path(ckpt, what)
    scope = spec.get('scope')
    if 'config' in spec:
        cfg = load_config(resolve_config_path(spec['config'], f'{what} config'))
        if spec.get('cfg_options'):
            cfg.merge_from_dict(dict(spec['cfg_options']))
        if 'model' not in cfg:
            raise KeyError(f"{what} config {spec['config']!r} has no 'model'; point to a full "
                           f'model config.')
        model_cfg = copy.deepcopy(cfg.model)
        if cfg.get('data_preprocessor') is not None and 'data_preprocessor' not in model_cfg:
            # mmpretrain configs keep it top-level; mmengine's Runner merges it the same way
            model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
        scope = scope or cfg.get('default_scope') or (spec['config'].split('::')[0]
                                                      if '::' in spec['config'] else None)
        imports = cfg.get('custom_imports')
        if imports:
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**imports)
    else:
        model_cfg = ConfigDict(copy.deepcopy(spec['model']))  # attribute access, as from files
    if scope is None:
        current = DefaultScope.get_current_instance()
        scope = current.scope_name if current is not None else 'mmengine'
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    return model, ckpt, scope
