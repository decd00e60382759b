"""Train a model (segmentor, detector, classifier or distiller) from an rtkd config.

Compatible with ``mim train`` arguments; additionally runs on CPU under
``torchrun --nproc_per_node=N tools/train.py CFG --launcher pytorch`` (gloo backend).

The project's default hooks (non-finite loss stop, a train line at the last iteration, the
recipe-settings report; see :mod:`rtkd.engine.hooks`) are added to a config that does not
inherit ``configs/_base_/default_runtime.py``. A distillation recipe logs at start which
optimizer / schedule / train data it uses and whether they equal the student config's own;
``--student-settings`` trains with the student config's settings instead.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import rtkd  # noqa: F401  (before the config load, so rtkd.compat's fixes cover it too)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model with rtkd')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--student-settings',
        action='store_true',
        default=False,
        help="distillation recipe: train with the optimizer, param_scheduler, "
        "train_cfg and train data settings of the config named by "
        "model.student instead of those the recipe inherits from its _base_")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {osp.abspath(args.config)!r}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.student_settings:  # before --cfg-options, so those still win
        from rtkd.distill.recipe_checks import apply_student_settings
        changed = apply_student_settings(cfg)
        print(f'--student-settings: took {", ".join(changed) or "nothing (already equal)"} '
              f'from the student config.')
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    from rtkd.engine.hooks import add_default_hooks
    add_default_hooks(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    cfg.resume = args.resume
    if args.launcher == 'pytorch':
        from rtkd.utils import setup_cpu_distributed
        setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
