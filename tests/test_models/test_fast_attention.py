"""Fast attention layer: shape, gradients, and equality with the naive quadratic computation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import rtkd  # noqa: F401  (registers rtkd's types)
from rtkd.models.layers import FastAttention


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One intra-op thread: the 2-core test machine is shared, and oversubscribed BLAS threads
    make tiny convolutions 20x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: bool) -> torch.Tensor:
    """(Q_hat K_hat^T) V [/ n] with the n x n similarity matrix built explicitly."""
    n_batch, channels, height, width = v.shape
    n = height * width
    q_hat = F.normalize(q.reshape(n_batch, q.shape[1], n).permute(0, 2, 1), dim=2)  # N x n x c'
    k_hat = F.normalize(k.reshape(n_batch, k.shape[1], n).permute(0, 2, 1), dim=2)  # N x n x c'
    v_mat = v.reshape(n_batch, channels, n).permute(0, 2, 1)  # N x n x C
    sim = q_hat @ k_hat.transpose(1, 2)  # N x n x n, cosine similarities
    assert sim.shape == (n_batch, n, n)
    y = sim @ v_mat
    if scale:
        y = y / n
    return y.permute(0, 2, 1).reshape(n_batch, channels, height, width)


@pytest.mark.parametrize('scale', [True, False])
def test_linear_equals_quadratic(scale: bool) -> None:
    torch.manual_seed(0)
    q = torch.randn(2, 4, 5, 7, dtype=torch.float64)
    k = torch.randn(2, 4, 5, 7, dtype=torch.float64)
    v = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    fast = FastAttention.attend(q, k, v, scale_by_pixels=scale)
    assert fast.shape == v.shape
    torch.testing.assert_close(fast, _naive(q, k, v, scale), rtol=1e-10, atol=1e-10)


def test_module_matches_naive_and_residual() -> None:
    torch.manual_seed(0)
    m = FastAttention(8, qk_channels=4).double().eval()
    x = torch.randn(1, 8, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = x + m.out_proj(_naive(m.query(x), m.key(x), m.value(x), True))
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    # the projections have the paper's structure: Q/K 1x1 conv + BN (no act), V/out + act
    assert m.query.conv.kernel_size == (1, 1) and m.query.conv.out_channels == 4
    assert m.value.with_activation and m.out_proj.with_activation
    assert not m.query.with_activation and not m.key.with_activation


def test_shape_and_gradients() -> None:
    torch.manual_seed(0)
    m = FastAttention(in_channels=16)  # default 32 q/k
    assert m.query.conv.out_channels == 32
    # a private building block of RTFANet, not a registered type (built in Python, not configs)
    assert MODELS.get('FastAttention') is None
    x = torch.randn(2, 16, 9, 11, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in m.named_parameters():
        assert p.grad is not None, f'{name} got no gradient'
        assert torch.isfinite(p.grad).all()


def test_scaling_makes_output_size_independent() -> None:
    """With 1/n, a constant map gives the same attention output at any size."""
    q = torch.ones(1, 4, 3, 3)
    v = torch.full((1, 2, 3, 3), 2.0)
    small = FastAttention.attend(q, q, v)
    large = FastAttention.attend(
        torch.ones(1, 4, 12, 12), torch.ones(1, 4, 12, 12), torch.full((1, 2, 12, 12), 2.0))
    assert torch.allclose(small.mean(), large.mean())
    unscaled = FastAttention.attend(
        torch.ones(1, 4, 12, 12),
        torch.ones(1, 4, 12, 12),
        torch.full((1, 2, 12, 12), 2.0),
        scale_by_pixels=False)
    assert torch.allclose(unscaled.mean(), torch.tensor(2.0 * 144))


def test_bad_input_fails_early() -> None:
    m = FastAttention(8)
    with pytest.raises(ValueError, match='in_channels'):
        m(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match='positive'):
        FastAttention(0)
