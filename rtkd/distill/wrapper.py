"""``DistillerDataParallel``: DDP wrapper that runs the Distiller's own ``train_step``.

mmengine's ``MMDistributedDataParallel.train_step`` runs forward + one ``update_params`` itself,
which cannot drive a second (discriminator) optimizer nor the ``freeze_student`` option. This
wrapper delegates to ``Distiller.train_step`` and passes itself in, so the student forward still
goes through DDP (gradients are all-reduced) while the distiller controls the updates. Plain
recipes (one optimizer, no freezing) also work with the stock ``MMDistributedDataParallel``.

Config: ``model_wrapper_cfg = dict(type='DistillerDataParallel')`` (on CPU ``tools/train.py``
adds ``device_ids=None``). ``find_unused_parameters`` can stay False (DDP's default): a loss
switched off by its schedule still touches its parameters and connectors (a zero term), and the
critics are kept out of DDP (``_ddp_params_and_buffers_to_ignore``; broadcast from rank 0 at the
first step, gradients averaged in the critic step).

Non-finite losses under DDP: ``NonFiniteLossHook`` all-reduces a finite flag after every step,
so every rank raises (the one with the NaN/inf loss names it, the others say another rank's
loss diverged) before ``CheckpointHook`` runs: no rank writes that iteration's checkpoint and
the job exits non-zero.
"""
from __future__ import annotations

from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DistillerDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` whose ``train_step`` is the wrapped model's own.

    Args:
        module (nn.Module): the distiller (any model whose ``train_step`` accepts
            ``ddp_model=``).
        detect_anomalous_params (bool): see ``MMDistributedDataParallel``.
        **kwargs: passed to ``torch.nn.parallel.DistributedDataParallel``.
    """

    def train_step(self, data, optim_wrapper):
        """Run ``self.module.train_step(data, optim_wrapper, ddp_model=self)``."""
        return self.module.train_step(data, optim_wrapper, ddp_model=self)
