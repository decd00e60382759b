"""Evaluate a checkpoint with an rtkd config (mim-compatible arguments).

For a distiller config the *student* is evaluated.

``--show-dir DIR`` draws every test image (input | ground truth | prediction) into DIR: it
switches ``default_hooks.visualization`` on with ``interval=1``. mmseg 1.2.2's own tool (what
``mim test`` runs) only switches drawing on and keeps the hook's ``interval`` (50: one image in
50); configs built on ``configs/_base_/default_runtime.py`` still draw every image there, through
their ``TestVisualizationIntervalHook``; other configs need ``mim test ... --show-dir DIR
--cfg-options default_hooks.visualization.interval=1``.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import rtkd  # noqa: F401  (before the config load, so rtkd.compat's fixes cover it too)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model with rtkd')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='directory to save the predicted segmentation maps')
    parser.add_argument('--show', action='store_true', help='show the prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where every test image is drawn '
        '(input | ground truth | prediction)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
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


def trigger_visualization_hook(cfg, args) -> None:
    """Draw every test image: ``draw=True``, ``interval=1``, ``show`` and the save folder.

    Args:
        cfg (Config): the test config (changed in place).
        args (Namespace): the parsed arguments.
    """
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise KeyError("--show/--show-dir need default_hooks.visualization=dict(type="
                       "'SegVisualizationHook'); inherit configs/_base_/default_runtime.py.")
    vis = hooks['visualization']
    vis['draw'] = True
    vis['interval'] = 1  # mmseg's hook draws every `interval`-th batch (50 by default)
    if 'test_visualization' in hooks:
        hooks['test_visualization']['interval'] = 1
    if args.show:
        vis['show'] = True
        vis['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir


def main():
    args = parse_args()
    from rtkd.utils import check_file, setup_cpu_distributed
    check_file(args.config, 'config')
    check_file(args.checkpoint, 'checkpoint')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    from rtkd.engine.hooks import add_default_hooks
    add_default_hooks(cfg)  # configs not built on the project's runtime base
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args)
    if args.launcher == 'pytorch':
        setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()
