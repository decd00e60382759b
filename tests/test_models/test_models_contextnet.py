"""ContextNet cn14 (RTContextNet + RTFastSCNNHead): configs build, any-size logits, gradients."""
import pytest
import torch

from helpers import (build_model, count_params, load_cfg, loss_and_check_grads, predict_logits,
                     tiny_size_options)

CAMVID = 'configs/contextnet/contextnet_1xb8-2k_camvid-360x480.py'
CITYSCAPES = 'configs/contextnet/contextnet_1xb12-150k_cityscapes-512x1024.py'
PAPER_PARAMS = 0.85e6


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return build_model(load_cfg(CAMVID, tiny_size_options((64, 96))))


@pytest.mark.parametrize('size', [(64, 96), (67, 99)])
def test_predict_logits_have_input_size(model, size):
    logits = predict_logits(model, *size)
    assert logits.shape == (11, *size)
    assert torch.isfinite(logits).all()


def test_branches_resolutions(model):
    shallow, deep, fused = model.backbone(torch.randn(1, 3, 67, 99))
    assert shallow.shape[1:] == fused.shape[1:] == (128, 9, 13)  # full image / 8
    assert deep.shape[1:] == (128, 3, 4)  # (image / 4) / 8, rounded up


def test_loss_and_every_parameter_gets_gradient(model):
    losses = loss_and_check_grads(model, 64, 96)
    assert 'decode.loss_ce' in losses


def test_paper_parameter_count():
    m = build_model(load_cfg(CITYSCAPES))
    n = count_params(m)
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.05, n
    assert 0.85e6 <= n <= 0.88e6, n


def test_wrong_head_in_channels_fails_clearly():
    m = build_model(load_cfg(CAMVID, {'model.decode_head.in_channels': 96}))
    with pytest.raises(ValueError, match='in_channels=96 does not match'):
        predict_logits(m, 64, 96)


def test_bad_backbone_argument_fails_at_build():
    with pytest.raises(ValueError, match='shallow_channels and shallow_strides'):
        build_model(load_cfg(CAMVID, {'model.backbone.shallow_strides': (2, 2, 2)}))
