"""Put a trained teacher where the distillation recipes find it (``$RTKD_TEACHERS``).

A teacher base (``configs/_base_/teachers/*.py``) names two files in the teacher folder: an
inference config and the weights. This tool writes both from what training left behind::

    export RTKD_TEACHERS=$HOME/rtkd_teachers
    python tools/misc/install_teacher.py \\
        configs/_base_/teachers/bisenetv2_camvid-240x320_infer.py \\
        work_dirs/teacher_ft4k/best_mIoU_iter_4000.pth --name bisenetv2_camvid-240x320_ft7000

* ``<dest>/<name>.pth``: the weights the inference config uses, nothing else (training-only
  auxiliary heads, optimizer state and message hub are dropped, so the file is ~4x smaller and
  loads with ``torch.load(weights_only=True)``); ``meta`` records the source checkpoint's file
  name (not its folder: the file is meant to be shared), iteration and SHA-256. A checkpoint
  that does not fit the config stops with the missing weights named (rtkd's one loading rule,
  :func:`rtkd.apis.load_weights`).
* ``<dest>/<config file name>``: the inference config *flattened* (its ``_base_`` files merged
  in, so it works outside the repository) and without a training part (``train_dataloader =
  None``; ``mim test`` / ``tools/test.py`` accept it). An existing file of that name is kept
  when it builds the same model and refused when it does not.

Both files are written atomically. The destination is ``--dest``, else ``$RTKD_TEACHERS``.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        'config',
        help='the teacher inference config (e.g. configs/_base_/teachers/'
        'bisenetv2_camvid-240x320_infer.py)')
    p.add_argument('checkpoint', help='a training checkpoint (or weights) of that teacher')
    p.add_argument('--name', required=True, help='file name of the weights, without .pth')
    p.add_argument('--dest', default=None, help='teacher folder (default: $RTKD_TEACHERS)')
    return p.parse_args(argv)


def flat_inference_config(config: str):
    """The config with its bases merged in and no training part (a ``Config``)."""
    from rtkd.apis import load_config
    cfg = load_config(config)
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler'):
        if key in cfg:
            cfg[key] = None
    return cfg


def install(config: str, checkpoint: str, name: str, dest: str) -> tuple:
    """Write ``<dest>/<name>.pth`` and the flattened config; returns both paths.

    Raises:
        ValueError: the checkpoint does not fit the config, or another config of the same file
            name is already in ``dest``.
    """
    from mmengine.config import Config

    from rtkd.apis import init_segmentor, load_weights
    from rtkd.distill.teacher_cache import file_sha256
    from rtkd.utils import atomic_write_bytes
    if not name or osp.basename(name) != name or name.endswith('.pth'):
        raise ValueError(f'--name must be a plain file name without .pth, got {name!r}.')
    os.makedirs(dest, exist_ok=True)
    cfg = flat_inference_config(config)
    cfg_out = osp.join(dest, osp.basename(config.split('::')[-1]))
    if osp.isfile(cfg_out) and Config.fromfile(cfg_out).model.to_dict() != cfg.model.to_dict():
        raise ValueError(f'{cfg_out} already holds a different model config; install this '
                         'teacher into another folder (--dest) or remove that file.')
    model = init_segmentor(cfg)
    ckpt = load_weights(model, checkpoint)  # raises when the weights do not fit
    src_meta = ckpt.get('meta') or {}
    meta = dict(
        source=osp.basename(checkpoint),  # a folder of this machine means nothing elsewhere
        source_sha256=file_sha256(checkpoint),
        iter=src_meta.get('iter'),
        dataset_meta=src_meta.get('dataset_meta') or model.dataset_meta or None)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if not osp.isfile(cfg_out):
        text = cfg.pretty_text
        atomic_write_bytes(cfg_out, lambda f: f.write(text.encode()))
    out = osp.join(dest, name + '.pth')
    atomic_write_bytes(out, lambda f: torch.save(dict(state_dict=state, meta=meta), f))
    torch.load(out, map_location='cpu', weights_only=True)  # the safe loader accepts it
    return out, cfg_out


def main(argv=None) -> None:
    import rtkd  # noqa: F401
    args = parse_args(argv)
    dest = args.dest or os.environ.get('RTKD_TEACHERS')
    if not dest:
        sys.exit('install_teacher: set RTKD_TEACHERS (the folder the teacher bases read) or pass '
                 '--dest DIR.')
    try:
        out, cfg_out = install(args.config, args.checkpoint, args.name, dest)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        sys.exit(f'install_teacher: {e}')
    print(f'wrote {out} ({osp.getsize(out) / 2**20:.1f} MB) and {cfg_out}')
    print('a teacher base for it: teacher = dict(\n'
          f"    config='{{{{$RTKD_TEACHERS:../shared/teachers}}}}/{osp.basename(cfg_out)}',\n"
          f"    checkpoint='{{{{$RTKD_TEACHERS:../shared/teachers}}}}/{args.name}.pth')")


if __name__ == '__main__':
    main()
