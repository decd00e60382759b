"""TFRMSprop (TensorFlow 1.x RMSprop) against the TensorFlow formula, and the ContextNet configs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import rtkd  # noqa: F401
from rtkd.engine.optimizers import TFRMSprop
from helpers import build_model, load_cfg

CONTEXTNET = [
    'configs/contextnet/contextnet_1xb8-2k_camvid-360x480.py',
    'configs/contextnet/contextnet_1xb12-150k_cityscapes-512x1024.py'
]
GRADS = np.random.default_rng(0).normal(scale=3.0, size=(6, 5))
LRS = [0.045, 0.04, 0.03, 0.03, 0.01, 0.005]  # a schedule: TF keeps the lr in the momentum


def tf_rmsprop_reference(p0, grads, lrs, decay, momentum, eps, wd):
    """``ApplyRMSProp`` of TensorFlow 1.x, written out: ms starts at ones, mom at zeros."""
    p, ms, mom = p0.copy(), np.ones_like(p0), np.zeros_like(p0)
    for g, lr in zip(grads, lrs):
        g = g + wd * p
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / np.sqrt(ms + eps)
        p = p - mom
    return p


def run(optimizer_cls, p0, grads, lrs, **kwargs):
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = optimizer_cls([param], lr=lrs[0], **kwargs)
    for g, lr in zip(grads, lrs):
        opt.param_groups[0]['lr'] = lr
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return param.detach().numpy()


@pytest.mark.parametrize('momentum, eps, wd', [(0.9, 1.0, 4e-5), (0.0, 1e-10, 0.0),
                                               (0.9, 1e-3, 1e-2)])
def test_matches_tensorflow_formula(momentum, eps, wd) -> None:
    p0 = np.linspace(-1, 1, 5)
    expected = tf_rmsprop_reference(p0, GRADS, LRS, 0.9, momentum, eps, wd)
    got = run(TFRMSprop, p0, GRADS, LRS, alpha=0.9, momentum=momentum, eps=eps, weight_decay=wd)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_differs_from_torch_rmsprop_with_the_same_numbers() -> None:
    """Why ContextNet's "TensorFlow RMSprop, eps 1" needs its own optimizer."""
    p0 = np.linspace(-1, 1, 5)
    kwargs = dict(alpha=0.9, momentum=0.9, eps=1.0, weight_decay=4e-5)
    tf = run(TFRMSprop, p0, GRADS, LRS, **kwargs)
    pt = run(torch.optim.RMSprop, p0, GRADS, LRS, **kwargs)
    assert np.abs(tf - pt).max() > 0.05 * np.abs(tf - p0).max()
    # with eps 0, ms starting at 0 and a constant lr the two are the same algorithm
    lrs = [0.01] * len(GRADS)
    same = dict(alpha=0.9, momentum=0.9, eps=0.0)
    np.testing.assert_allclose(
        run(TFRMSprop, p0, GRADS, lrs, ms_init=0.0, **same),
        run(torch.optim.RMSprop, p0, GRADS, lrs, **same),
        rtol=1e-12)


def test_state_dict_round_trip_continues_identically() -> None:
    p0 = np.linspace(-1, 1, 5)
    full = run(TFRMSprop, p0, GRADS, LRS, alpha=0.9, momentum=0.9, eps=1.0)
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = TFRMSprop([param], lr=LRS[0], alpha=0.9, momentum=0.9, eps=1.0)
    for i, (g, lr) in enumerate(zip(GRADS, LRS)):
        if i == 3:  # "resume": a fresh optimizer loads the state
            state = opt.state_dict()
            opt = TFRMSprop([param], lr=LRS[0], alpha=0.9, momentum=0.9, eps=1.0)
            opt.load_state_dict(state)
        opt.param_groups[0]['lr'] = lr
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    np.testing.assert_allclose(param.detach().numpy(), full, rtol=1e-12)
    with pytest.raises(ValueError, match='alpha'):
        TFRMSprop([param], alpha=1.0)


@pytest.mark.parametrize('path', CONTEXTNET)
def test_contextnet_configs_use_tensorflow_rmsprop(path) -> None:
    from mmengine.optim import build_optim_wrapper
    cfg = load_cfg(path)
    model = build_model(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    opt = wrapper.optimizer
    assert isinstance(opt, TFRMSprop)
    group = opt.param_groups[0]
    assert (group['lr'], group['alpha'], group['momentum'], group['eps']) == (0.045, 0.9, 0.9, 1.0)
    assert group['ms_init'] == 1.0
    decays = {g['weight_decay'] for g in opt.param_groups}
    assert decays == {0.0, 4e-5}  # none on depthwise convs (dwconv_decay_mult=0)
