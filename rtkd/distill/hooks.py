"""``StudentCheckpointHook``: write student-only checkpoints while distilling.

Files: ``<work_dir>/student_iter_<N>.pth`` every ``interval`` iterations (``interval=-1``: none)
and ``<work_dir>/student_latest.pth`` after training (and at each save). Their ``state_dict``
keys are those of the plain student, so the student's own config loads them
(``mim test mmseg <student config> --checkpoint <work_dir>/student_latest.pth``).

Config: ``custom_hooks = [dict(type='StudentCheckpointHook', interval=1000)]``.

``RecipeSettingsHook``: at the start of training, log which optimizer, schedule, train loop and
train data a distillation recipe uses and whether they equal the student config's own
(:mod:`rtkd.distill.recipe_checks`). The project's runtime base enables it for every config
(``default_hooks = dict(recipe_settings=dict(type='RecipeSettingsHook'))``: a default hook, so
``mim train`` runs it too and recipes that replace ``custom_hooks`` keep it).
"""
from __future__ import annotations

import glob
import os
import os.path as osp
from typing import Optional

from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu


@HOOKS.register_module()
class StudentCheckpointHook(Hook):
    """Save the student alone from a Distiller run.

    Args:
        interval (int): save ``student_iter_<N>.pth`` every ``interval`` iterations
            (-1: only ``student_latest.pth`` at the end).
        save_latest (bool): also (over)write ``student_latest.pth`` at each save and at the end.
        out_dir (str | None): folder (default: the runner's work_dir).
        max_keep_ckpts (int | None): keep only the newest N ``student_iter_*.pth``; None (default)
            follows the run's ``CheckpointHook.max_keep_ckpts``, -1 keeps all.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 interval: int = -1,
                 save_latest: bool = True,
                 out_dir: Optional[str] = None,
                 max_keep_ckpts: Optional[int] = None) -> None:
        self.interval = interval
        self.save_latest = save_latest
        self.out_dir = out_dir
        self.max_keep_ckpts = max_keep_ckpts

    @staticmethod
    def _student(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'student'):
            raise TypeError('StudentCheckpointHook needs a Distiller model (with .student).')
        return model.student

    def _student_state(self, runner) -> dict:
        """The exported student (a Distiller leaves out its ``export_exclude`` modules)."""
        student = self._student(runner)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        export = getattr(model, 'student_state_dict', None)
        return export() if callable(export) else student.state_dict()

    @master_only
    def _save(self, runner, names) -> None:
        ckpt = dict(
            meta=dict(
                iter=runner.iter,
                epoch=runner.epoch,
                source='rtkd Distiller',
                experiment_name=runner.experiment_name),
            state_dict=weights_to_cpu(self._student_state(runner)))
        folder = self.out_dir or runner.work_dir
        for name in names:
            save_checkpoint(ckpt, osp.join(folder, name))
        self._prune(runner, folder)

    def _prune(self, runner, folder: str) -> None:
        """Delete the oldest ``student_iter_*.pth`` beyond ``max_keep_ckpts``."""
        keep = self.max_keep_ckpts
        if keep is None:
            keep = next((getattr(h, 'max_keep_ckpts', -1)
                         for h in runner.hooks if type(h).__name__ == 'CheckpointHook'), -1)
        if keep is None or keep <= 0:
            return
        found = []
        for path in glob.glob(osp.join(folder, 'student_iter_*.pth')):
            stem = osp.basename(path)[len('student_iter_'):-len('.pth')]
            if stem.isdigit():
                found.append((int(stem), path))
        for _, path in sorted(found)[:-keep]:
            os.remove(path)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Save every ``interval`` iterations."""
        if self.interval > 0 and self.every_n_train_iters(runner, self.interval):
            names = [f'student_iter_{runner.iter + 1}.pth']
            if self.save_latest:
                names.append('student_latest.pth')
            self._save(runner, names)

    def after_train(self, runner) -> None:
        """Save ``student_latest.pth`` at the end of training."""
        if self.save_latest:
            self._save(runner, ['student_latest.pth'])


@HOOKS.register_module()
class RecipeSettingsHook(Hook):
    """Log, before the first iteration, the training settings a distillation recipe really uses.

    A recipe that swaps only ``model.student`` keeps the optimizer, schedule and data settings
    of its ``_base_`` (the previous student's). This hook compares the run's settings with those
    of the config named by ``model.student`` (:func:`rtkd.distill.recipe_checks.
    compare_recipe_settings`) and logs one INFO line when they agree, one WARNING that names
    every differing key with both values and how to take the student's settings when they do
    not. Configs that are not ``Distiller`` recipes with a student config file are left alone.

    Args:
        enabled (bool): False turns the check off (``--cfg-options
            default_hooks.recipe_settings.enabled=False``).
    """

    priority = 'LOW'

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.report = None

    def before_train(self, runner) -> None:
        """Compare and log (see the class docstring)."""
        if not self.enabled:
            return
        from .recipe_checks import log_recipe_settings
        self.report = log_recipe_settings(runner.cfg, runner.logger)
