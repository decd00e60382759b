"""Building blocks in rtkd.models.layers: output shapes, gradients, argument checks."""
import pytest
import torch
import torch.nn as nn

from rtkd.models.layers import (AsymmetricConv, DilatedConv, DSConv, ESPModule, FeatureFusion,
                                InvertedResidual, PyramidPooling, make_bottleneck_stage)


def _check_grads(module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """Forward, backward a scalar, assert every parameter and every input got a finite grad."""
    inputs = [x.requires_grad_() for x in inputs]
    out = module(*inputs)
    out.square().mean().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f'{name} has no gradient'
        assert torch.isfinite(p.grad).all(), name
    for x in inputs:
        assert x.grad is not None and x.grad.abs().sum() > 0
    return out


def test_dsconv_shape_params_grad():
    m = DSConv(8, 16, 3, stride=2)
    out = _check_grads(m, torch.randn(2, 8, 15, 20))
    assert out.shape == (2, 16, 8, 10)
    assert m.depthwise_conv.conv.groups == 8
    assert not m.depthwise_conv.with_activation  # MobileNetV2: no act between dw and pw
    n_conv = sum(p.numel() for n, p in m.named_parameters() if 'conv.weight' in n)
    assert n_conv == 8 * 9 + 8 * 16  # vs 8*16*9 for a full 3x3 conv
    with pytest.raises(ValueError, match='odd kernel_size'):
        DSConv(8, 16, 2)


def test_asymmetric_conv_shape_grad():
    m = AsymmetricConv(8, 8, kernel_size=5, dilation=2)
    out = _check_grads(m, torch.randn(2, 8, 13, 17))
    assert out.shape == (2, 8, 13, 17)
    assert m.conv_kx1.conv.kernel_size == (5, 1) and m.conv_1xk.conv.kernel_size == (1, 5)
    assert AsymmetricConv(8, 8, 3, stride=2)(torch.randn(1, 8, 13, 17)).shape == (1, 8, 7, 9)
    with pytest.raises(ValueError, match='groups=3 must divide'):
        AsymmetricConv(8, 8, groups=3)


@pytest.mark.parametrize('dilation', [1, 2, 4])
def test_dilated_conv_keeps_size(dilation):
    m = DilatedConv(4, 6, 3, dilation=dilation)
    out = _check_grads(m, torch.randn(2, 4, 11, 9))
    assert out.shape == (2, 6, 11, 9)
    assert m.conv.dilation == (dilation, dilation)
    with pytest.raises(ValueError, match='dilation >= 1'):
        DilatedConv(4, 6, 3, dilation=0)


def test_inverted_residual_stage():
    stage = make_bottleneck_stage(16, 24, num_blocks=3, stride=2, expand_ratio=6)
    out = _check_grads(stage, torch.randn(2, 16, 15, 21))
    assert out.shape == (2, 24, 8, 11)
    assert len(stage) == 3 and all(isinstance(b, InvertedResidual) for b in stage)
    assert not stage[0].use_res_connect and stage[1].use_res_connect
    # t = 1 has no expansion conv
    assert len(make_bottleneck_stage(8, 8, 1, 1, expand_ratio=1)[0].conv) == 2
    with pytest.raises(ValueError, match='stride in'):
        make_bottleneck_stage(8, 8, 1, stride=3)


@pytest.mark.parametrize('stride,size,expected', [(1, (13, 17), (13, 17)), (2, (13, 17), (7, 9))])
def test_esp_module_shape_grad(stride, size, expected):
    m = ESPModule(20 if stride == 1 else 10, 20, stride=stride)
    out = _check_grads(m, torch.randn(2, m.reduce.in_channels, *size))
    assert out.shape == (2, 20, *expected)
    assert m.residual == (stride == 1)
    assert [b.dilation[0] for b in m.branches] == [1, 2, 4, 8, 16]
    # N/K channels per branch, the first branch takes the remainder: 4 + 4*4 = 20
    assert [b.out_channels for b in m.branches] == [4, 4, 4, 4, 4]


def test_esp_module_hierarchical_fusion_and_channel_split():
    m = ESPModule(12, 23)  # 23 // 5 = 4 per branch, first gets 23 - 16 = 7
    assert [b.out_channels for b in m.branches] == [7, 4, 4, 4, 4]
    assert not m.residual
    x = torch.randn(1, 12, 9, 9)
    m.eval()
    with torch.no_grad():
        y_hff = m(x)
        m.hff = False
        y_raw = m(x)
    assert y_hff.shape == y_raw.shape == (1, 23, 9, 9)
    # branch 1 (d=1) and branch 2 are not summed, so their channels agree; later ones differ
    assert torch.allclose(y_hff[:, :11], y_raw[:, :11])
    assert not torch.allclose(y_hff[:, 15:], y_raw[:, 15:])
    with pytest.raises(ValueError, match='residual=True needs'):
        ESPModule(12, 20, residual=True)
    with pytest.raises(ValueError, match='out_channels \\(3\\) >= number of dilations'):
        ESPModule(12, 3)


def test_pyramid_pooling_shape_grad():
    m = PyramidPooling(16, 12, bins=(1, 2, 3, 6))
    out = _check_grads(m, torch.randn(2, 16, 7, 11))
    assert out.shape == (2, 12, 7, 11)
    assert m.post_conv.conv.in_channels == 16 + 4 * 4
    assert PyramidPooling(16, 12, post_kernel_size=3).post_conv.conv.kernel_size == (3, 3)
    with pytest.raises(ValueError, match='bins'):
        PyramidPooling(16, 12, bins=(0, 2))


def test_feature_fusion_odd_sizes_grad():
    m = FeatureFusion(8, 16, 12, dilation=4)
    out = _check_grads(m, torch.randn(2, 8, 17, 25), torch.randn(2, 16, 5, 7))
    assert out.shape == (2, 12, 17, 25)
    assert m.low_dwconv.conv.dilation == (4, 4) and m.low_dwconv.conv.groups == 16
    assert (out >= 0).all()  # ReLU after the sum


@pytest.mark.parametrize('size', [(7, 11), (16, 32), (3, 5)])
def test_pyramid_pooling_exportable_pool_equals_torch(size):
    from rtkd.models.layers.pyramid_pooling import adaptive_avg_pool2d_matmul
    x = torch.randn(2, 3, *size)
    for b in (1, 2, 3, 6):
        ref = torch.nn.functional.adaptive_avg_pool2d(x, b)
        assert torch.allclose(adaptive_avg_pool2d_matmul(x, b), ref, atol=1e-6), b
