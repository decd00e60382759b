"""Loss-test helpers: seeded float64 tensors, a numpy softmax, the no-teacher-gradient check."""
from __future__ import annotations

import numpy as np
import torch


def rand(*shape, seed=0, dtype=torch.float64):
    """A seeded standard-normal tensor (float64 unless told)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def np_softmax(x, axis):
    """Softmax of a numpy array along ``axis`` (the independent reference of the loss tests)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def assert_no_teacher_grad(loss_fn, s, t, **extra):
    """``loss_fn(s, t)`` is a scalar whose gradient reaches the student, never the teacher."""
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    loss = loss_fn(s, t, **extra)
    loss.backward()
    assert t.grad is None
    assert s.grad is not None and torch.isfinite(s.grad).all()
    assert loss.dim() == 0
