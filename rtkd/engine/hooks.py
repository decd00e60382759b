"""Runner-level hooks of the project's runtime base (``configs/_base_/default_runtime.py``).

* ``NonFiniteLossHook``: stop a diverged run before it writes NaN checkpoints.
* ``FinalTrainLogHook``: a train log line at the last iteration, also after a short ``--resume``.
* ``TestVisualizationIntervalHook``: ``--show-dir`` draws every test image (also through
  ``mim test``).

All three are *default* hooks of the runtime base, so ``mim train`` / ``mim test`` (which run
mmseg's own tools) use them and recipes that set their own ``custom_hooks`` keep them;
``tools/train.py`` and ``tools/test.py`` add them to configs that lack them
(:func:`add_default_hooks`).

``NonFiniteLossHook``:

Without it a run whose losses become NaN/inf (a huge learning rate, a broken label, an fp16
overflow) trains on to "Training finished successfully" with exit code 0 and NaN checkpoints.
The project's runtime base (``configs/_base_/default_runtime.py``) enables it for every network
and distillation config: ``default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))``
(a default hook, so recipes that set their own ``custom_hooks`` keep it).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise ``FloatingPointError`` when a logged loss of a training step is NaN or infinite.

    It checks the values ``train_step`` returns (mmengine's parsed losses: the total ``loss``
    and every entry whose name contains ``loss``, task and distillation losses alike; metrics
    such as ``acc_seg`` are not checked) with one device synchronisation per step. Under DDP the
    ranks agree on the result (one all-reduce of a flag), so every rank stops before the
    checkpoint. Its priority (``ABOVE_NORMAL``) runs it before the logger, the parameter
    schedulers and ``CheckpointHook`` / ``StudentCheckpointHook`` (``VERY_LOW``), so the step
    that diverged writes no checkpoint; an uncaught exception makes ``tools/train.py`` and ``mim
    train`` exit non-zero.

    Args:
        interval (int): check every ``interval`` iterations. Defaults to 1.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'NonFiniteLossHook interval must be >= 1, got {interval}.')
        self.interval = interval

    @staticmethod
    def _loss_tensors(outputs: dict) -> Dict[str, torch.Tensor]:
        """The loss entries of ``outputs`` as flat float tensors."""
        found = {}
        for name, value in outputs.items():
            if 'loss' not in name:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = torch.tensor(float(value))
            if torch.is_tensor(value):
                found[name] = value.detach().reshape(-1).float()
        return found

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Check the losses of the step that just ran.

        Args:
            runner (Runner): the runner.
            batch_idx (int): index of the batch in the epoch.
            data_batch (dict | tuple | list, optional): the batch.
            outputs (dict, optional): what ``model.train_step`` returned.

        Returns:
            None

        Raises:
            FloatingPointError: a loss is NaN or infinite; names the losses and the iteration.
        """
        if not isinstance(outputs, dict) or not self.every_n_train_iters(runner, self.interval):
            return
        losses = self._loss_tensors(outputs)
        if not losses:
            return
        values = list(losses.values())
        device = values[0].device
        finite = torch.isfinite(torch.cat([v.to(device) for v in values])).all().float()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # every rank must stop before CheckpointHook, also the ranks whose own loss is finite
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if bool(finite) is False and all(bool(torch.isfinite(v).all()) for v in values):
                raise FloatingPointError(
                    f'non-finite loss on another rank at iteration {runner.iter + 1}; stopping '
                    'every rank (no checkpoint written for this iteration): see that rank\'s '
                    'error for the loss name.')
        if bool(finite):
            return  # the only synchronisation on the normal path
        bad: List[str] = [
            f'{name}={v.tolist()[0] if v.numel() == 1 else v.tolist()}'
            for name, v in losses.items() if name != 'loss' and not bool(torch.isfinite(v).all())
        ]
        if 'loss' in losses:  # the total, after the terms that made it non-finite
            bad.append(f'total loss={losses["loss"].tolist()[0]}')
        raise FloatingPointError(
            f'non-finite loss at iteration {runner.iter + 1}: {", ".join(bad)}; the run diverged '
            f'(no checkpoint written for this iteration) - lower the learning rate '
            f'(optim_wrapper.optimizer.lr) or clip gradients (optim_wrapper.clip_grad='
            f'dict(max_norm=...)), and check the loss weights and the labels.')


@HOOKS.register_module()
class FinalTrainLogHook(Hook):
    """Print a train log line at the last training iteration when ``LoggerHook`` did not.

    mmengine's ``LoggerHook`` logs a train line every ``interval`` iterations (iteration-based
    loops). A run whose last iteration is not a multiple of it - a short run, or a ``--resume``
    at iteration 8 of 12 with ``interval=10`` - ends without a line for its last iterations,
    so its final losses appear nowhere. At the last iteration this hook writes the line
    ``LoggerHook`` would have written (same log processor, same scalars file), only when
    ``LoggerHook`` did not write one for that iteration. Its priority (``LOW``) runs it after
    ``LoggerHook`` (``BELOW_NORMAL``) and before the checkpoint hooks (``VERY_LOW``).

    No argument.
    """

    priority = 'LOW'

    @staticmethod
    def _logger_hook(runner):
        from mmengine.hooks import LoggerHook
        return next((h for h in runner.hooks if isinstance(h, LoggerHook)), None)

    @staticmethod
    def _logger_wrote(hook, runner, batch_idx: int) -> bool:
        """Whether ``LoggerHook.after_train_iter`` wrote a line for this iteration."""
        if hook.every_n_inner_iters(batch_idx, hook.interval):
            return True
        return bool(
            hook.end_of_epoch(runner.train_dataloader, batch_idx)
            and (not hook.ignore_last or len(runner.train_dataloader) <= hook.interval))

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Write the last iteration's train line if ``LoggerHook`` skipped it.

        Args:
            runner (Runner): the runner.
            batch_idx (int): index of the batch (the iteration for iteration-based loops).
            data_batch (dict | tuple | list, optional): the batch.
            outputs (dict, optional): what ``model.train_step`` returned.

        Returns:
            None
        """
        max_iters = getattr(runner.train_loop, 'max_iters', None)  # custom loops may have none
        if max_iters is None or runner.iter + 1 < max_iters:
            return
        hook = self._logger_hook(runner)
        if hook is None or self._logger_wrote(hook, runner, batch_idx):
            return
        tag, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, 'train')
        runner.logger.info(log_str)
        runner.visualizer.add_scalars(
            tag, step=runner.iter + 1, file_path=getattr(hook, 'json_log_path', None))


@HOOKS.register_module()
class TestVisualizationIntervalHook(Hook):
    """Draw every ``interval``-th test batch (default: every image) when drawing is on.

    mmseg 1.2.2's ``SegVisualizationHook`` draws every ``interval``-th batch (default 50) at
    validation *and* test time, so ``mim test ... --show-dir DIR`` (which only switches
    ``draw`` on) saves one image in 50 and none at all for a test set smaller than 50 images.
    During ``runner.test()`` this hook sets the interval of every visualization hook that draws
    to its own ``interval`` and restores the hook's value afterwards, so the validation
    drawings of a training keep ``default_hooks.visualization.interval``.

    Args:
        interval (int): draw every ``interval``-th test batch; 1 (default) draws every image.
            ``--cfg-options default_hooks.test_visualization.interval=N`` draws fewer.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'TestVisualizationIntervalHook interval must be an int >= 1, got '
                             f'{interval!r}.')
        self.interval = interval
        self._saved: list = []

    def before_test(self, runner) -> None:
        """Set the interval of the drawing visualization hooks for the test run."""
        from mmengine.logging import print_log
        self._saved = []
        for hook in runner.hooks:
            if (hook is self or not type(hook).__name__.endswith('VisualizationHook')
                    or not getattr(hook, 'draw', False) or not hasattr(hook, 'interval')):
                continue
            self._saved.append((hook, hook.interval))
            if hook.interval != self.interval:
                what = ('every test image'
                        if self.interval == 1 else f'every {self.interval}th test batch')
                print_log(
                    f'test: {type(hook).__name__} draws {what}, not every '
                    f'{hook.interval}th batch (default_hooks.test_visualization.interval '
                    f'sets it).',
                    logger=runner.logger,
                    level=logging.INFO)
            hook.interval = self.interval

    def after_test(self, runner) -> None:
        """Restore the visualization hooks' own intervals."""
        for hook, interval in self._saved:
            hook.interval = interval
        self._saved = []


#: the default hooks ``tools/train.py`` / ``tools/test.py`` add to a config that lacks them
#: (the project's runtime base already has them)
RTKD_DEFAULT_HOOKS = dict(
    non_finite_loss=dict(type='NonFiniteLossHook'),
    final_train_log=dict(type='FinalTrainLogHook'),
    test_visualization=dict(type='TestVisualizationIntervalHook'),
    recipe_settings=dict(type='RecipeSettingsHook'))


def add_default_hooks(cfg) -> List[str]:
    """Add the project's default hooks a config does not name (a config not built on
    ``configs/_base_/default_runtime.py``).

    Args:
        cfg (Config): the run's config, changed in place.

    Returns:
        list[str]: the names of the hooks added.
    """
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = dict()
    added = []
    for name, hook in RTKD_DEFAULT_HOOKS.items():
        if name not in hooks:
            hooks[name] = dict(hook)
            added.append(name)
    return added
