"""``NonFiniteLossHook``: stop a diverged run before it writes NaN checkpoints.

Without it a run whose losses become NaN/inf (a huge learning rate, a broken label, an fp16
overflow) trains on to "Training finished successfully" with exit code 0 and NaN checkpoints.
The project's runtime base (``configs/_base_/default_runtime.py``) enables it for every network
and distillation config: ``default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))``
(a default hook, so recipes that set their own ``custom_hooks`` keep it).
"""
from __future__ import annotations

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
