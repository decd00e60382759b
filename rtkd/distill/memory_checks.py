"""``MemoryBankCheckHook``: stop before training when a loss's memory bank exceeds the data.

Losses with a memory bank (e.g. :class:`~rtkd.distill.losses.CIRKDLoss`) define
``check_memory_fill(num_images)``; this hook calls it with the training set's length before the
first iteration, so a queue the data can never fill (its random initial entries would stay for
more than an epoch) stops the run with one sentence that names the setting to lower::

    custom_hooks = [dict(type='MemoryBankCheckHook')]
"""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class MemoryBankCheckHook(Hook):
    """Call ``check_memory_fill(len(train set))`` on every module of the model that has it."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        """Check the memory banks against the training set (every rank does the same)."""
        model = runner.model
        model = getattr(model, 'module', model)  # DDP wrappers
        checkers = [m for m in model.modules() if callable(getattr(m, 'check_memory_fill', None))]
        if not checkers:
            return
        num_images = len(runner.train_dataloader.dataset)
        for m in checkers:
            m.check_memory_fill(num_images)
