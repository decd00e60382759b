"""RMSprop with TensorFlow 1.x semantics (``tf.compat.v1.train.RMSPropOptimizer``)."""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch
from mmengine.registry import OPTIMIZERS
from torch.optim import Optimizer


@OPTIMIZERS.register_module()
class TFRMSprop(Optimizer):
    r"""RMSprop as TensorFlow 1.x computes it (Tieleman & Hinton, Coursera lecture 6.5, 2012).

    TensorFlow's ``RMSPropOptimizer`` (the optimiser of MobileNetV2 and of ContextNet's
    "RMSprop, decay 0.9, momentum 0.9, epsilon 1") updates, with gradient :math:`g` (plus the
    coupled L2 term ``weight_decay * p``, as a TF-slim ``l2_regularizer`` adds it):

    .. math::
        ms &\leftarrow \alpha\, ms + (1 - \alpha)\, g^2 \qquad (ms_0 = 1) \\
        mom &\leftarrow \mu\, mom + \eta\, g / \sqrt{ms + \epsilon} \\
        p &\leftarrow p - mom

    ``torch.optim.RMSprop`` differs in three ways that matter with these hyper-parameters:
    it adds :math:`\epsilon` *outside* the square root (:math:`g / (\sqrt{ms} + \epsilon)`; with
    :math:`\epsilon = 1` the step for :math:`ms = 1` is :math:`g / 2` instead of
    :math:`g / \sqrt 2`), starts :math:`ms` at 0 instead of 1 (with a small :math:`\epsilon`
    its first steps then have a size of about :math:`\eta / \sqrt{1 - \alpha}` whatever the
    gradient scale) and applies :math:`\eta` after the momentum buffer (the same only while the
    learning rate is constant; under a schedule TensorFlow's buffer keeps the learning rates of
    past steps).

    Args:
        params (Iterable): parameters or parameter groups.
        lr (float): learning rate :math:`\eta`. Default: 0.01.
        alpha (float): decay :math:`\alpha` of the mean square (TF ``decay``). Default: 0.9.
        eps (float): :math:`\epsilon`, added under the square root. Default: 1e-10 (TF's).
        momentum (float): :math:`\mu`. Default: 0.
        weight_decay (float): coupled L2 coefficient added to the gradient. Default: 0.
        ms_init (float): initial mean square (TF 1.x: 1.0; Keras / TF 2 ``RMSprop``: 0.0).
            Default: 1.0.
    """

    def __init__(self,
                 params: Iterable,
                 lr: float = 1e-2,
                 alpha: float = 0.9,
                 eps: float = 1e-10,
                 momentum: float = 0.0,
                 weight_decay: float = 0.0,
                 ms_init: float = 1.0) -> None:
        for name, value, ok in (('lr', lr, lr
                                 >= 0), ('alpha', alpha, 0 <= alpha < 1), ('eps', eps, eps >= 0),
                                ('momentum', momentum, momentum
                                 >= 0), ('weight_decay', weight_decay, weight_decay
                                         >= 0), ('ms_init', ms_init, ms_init >= 0)):
            if not ok:
                raise ValueError(f'TFRMSprop: invalid {name} {value}.')
        super().__init__(
            params,
            dict(
                lr=lr,
                alpha=alpha,
                eps=eps,
                momentum=momentum,
                weight_decay=weight_decay,
                ms_init=ms_init))

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """Perform one update.

        Args:
            closure (Callable, optional): re-evaluates the model and returns the loss.

        Returns:
            float, optional: the closure's loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, eps = group['lr'], group['alpha'], group['eps']
            momentum, weight_decay = group['momentum'], group['weight_decay']
            for p in group['params']:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError('TFRMSprop does not support sparse gradients.')
                grad = p.grad
                if weight_decay:
                    grad = grad.add(p, alpha=weight_decay)
                state = self.state[p]
                if not state:
                    state['step'] = 0
                    state['square_avg'] = torch.full_like(
                        p, group['ms_init'], memory_format=torch.preserve_format)
                    if momentum > 0:
                        state['momentum_buffer'] = torch.zeros_like(
                            p, memory_format=torch.preserve_format)
                state['step'] += 1
                square_avg = state['square_avg']
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                denom = square_avg.add(eps).sqrt_()
                if momentum > 0:
                    buf = state['momentum_buffer']
                    buf.mul_(momentum).addcdiv_(grad, denom, value=lr)
                    p.sub_(buf)
                else:
                    p.addcdiv_(grad, denom, value=-lr)
        return loss
