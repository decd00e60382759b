"""Load a segmentor for the analysis tools from a config + checkpoint, plain mmseg or distilled.

* Plain mmseg configs (``EncoderDecoder`` & co.) are built as ``mmseg.apis.init_model`` does.
* A distillation config (``model.type == 'Distiller'`` with ``model.student = <config path or
  model dict>``) is accepted too: the *student* is built and the checkpoint's ``student.``
  prefixed weights are loaded (a student checkpoint exported without the prefix loads as is).
* The class names / palette come from the checkpoint's ``meta.dataset_meta`` (mmseg writes it),
  else from the config's dataset (``metainfo`` or the dataset class's ``METAINFO``).
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.config import Config, ConfigDict

from rtkd.utils import check_file


def load_config(path: str) -> Config:
    """Read a config from a local path or ``pkg::path`` (e.g. ``mmseg::fastscnn/...py``).

    Args:
        path (str): config location.

    Returns:
        Config: the parsed config.
    """
    if '::' in path and not osp.isfile(path):
        from mmengine.hub import get_config
        return get_config(path)
    check_file(path, 'config')
    return Config.fromfile(path)


def _student_config(cfg: Config) -> Config:
    """The student's own config inside a distillation config."""
    student = cfg.model.get('student')
    if student is None:
        raise ValueError(f'distillation config {cfg.filename!r} has no model.student; pass the '
                         'student config instead.')
    if isinstance(student, str):
        cand = student
        if not osp.isfile(cand) and '::' not in cand and cfg.filename:
            near = osp.join(osp.dirname(cfg.filename), student)
            cand = near if osp.isfile(near) else cand
        scfg = load_config(cand)
    else:
        scfg = copy.deepcopy(cfg)
        scfg.model = ConfigDict(student)
        if 'type' not in scfg.model:
            raise ValueError('model.student must be a config path or a model dict with a type.')
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
            return dict(classes=tuple(cls.METAINFO['classes']),
                        palette=cls.METAINFO.get('palette'))
    return None


def load_weights(model: torch.nn.Module, checkpoint: str) -> Optional[dict]:
    """Load a checkpoint into ``model`` and check that every weight used at inference is there.

    Keys prefixed ``module.`` (DDP) or ``student.`` (a whole distiller checkpoint) are stripped;
    other prefixed keys (``teacher.``, connectors) are ignored. Only ``auxiliary_head`` weights
    (training-only) may be missing.

    Args:
        model (torch.nn.Module): the built segmentor.
        checkpoint (str): local path or URL.

    Returns:
        dict or None: the checkpoint's ``meta['dataset_meta']`` when present.

    Raises:
        ValueError: the checkpoint does not hold the weights of this model.
    """
    import re

    from mmengine.runner import CheckpointLoader
    import rtkd.compat  # noqa: F401  (checkpoints written by rtkd runs load with the safe loader)
    from rtkd.distill.export import STUDENT_PREFIX, student_state_dict
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if any(k.startswith(STUDENT_PREFIX) or k.startswith('module.' + STUDENT_PREFIX)
           for k in state):
        state = student_state_dict(state)  # a distiller checkpoint: keep the student
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state and not k.startswith('auxiliary_head')
               and not k.endswith('num_batches_tracked')]
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
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return (meta or {}).get('dataset_meta')


def load_segmentor(config: Union[str, Config], checkpoint: Optional[str],
                   device: str = 'cpu') -> torch.nn.Module:
    """Build a segmentor in eval mode with its weights; ``model.cfg`` and ``model.dataset_meta``
    are set as ``mmseg.apis.init_model`` sets them, so ``mmseg.apis.inference_model`` works.

    Args:
        config (str | Config): segmentation or distillation config (path, ``pkg::path`` or Config).
        checkpoint (str, optional): weights (local path or URL); None keeps the initialisation.
        device (str): torch device.

    Returns:
        torch.nn.Module: the segmentor.
    """
    import rtkd  # noqa: F401  (registers the project's models and safe checkpoint loading)
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = load_config(config) if isinstance(config, str) else copy.deepcopy(config)
    if str(cfg.model.get('type', '')).endswith('Distiller'):
        cfg = _student_config(cfg)
    if 'test_pipeline' not in cfg:
        raise ValueError(f'config {cfg.filename!r} defines no test_pipeline; inference needs one '
                         '(inherit a dataset _base_ file).')
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    backbone = cfg.model.get('backbone')
    if isinstance(backbone, dict) and 'init_cfg' in backbone:
        backbone.init_cfg = None
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    meta = None
    if checkpoint:
        check_file(checkpoint, 'checkpoint')
        meta = load_weights(model, checkpoint)
    model.dataset_meta = meta or dataset_meta_from_config(cfg) or {}
    model.cfg = cfg
    model.to(device)
    model.eval()
    return model
