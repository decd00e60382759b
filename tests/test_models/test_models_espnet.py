"""ESPNet p=2, q=8 (RTESPNet + RTESPNetHead): configs build, any-size logits, gradients, params."""
import pytest
import torch

from helpers import (build_model, count_params, load_cfg, loss_and_check_grads, predict_logits,
                     tiny_size_options)

CAMVID = 'configs/espnet/espnet_1xb8-2k_camvid-360x480.py'
CITYSCAPES = 'configs/espnet/espnet_1xb12-75k_cityscapes-512x1024.py'
PAPER_PARAMS = 0.364e6


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return build_model(load_cfg(CAMVID, tiny_size_options((64, 96))))


@pytest.mark.parametrize('size', [(64, 96), (67, 99)])
def test_predict_logits_have_input_size(model, size):
    logits = predict_logits(model, *size)
    assert logits.shape == (11, *size)
    assert torch.isfinite(logits).all()


def test_encoder_levels_and_decoder_on_odd_size(model):
    f1, f2, f3 = model.backbone(torch.randn(1, 3, 67, 99))
    assert f1.shape[1:] == (19, 34, 50)  # 16 conv + 3 reinforcement channels, 1/2
    assert f2.shape[1:] == (131, 17, 25)  # 64 + 64 + 3, 1/4
    assert f3.shape[1:] == (256, 9, 13)  # 128 + 128, 1/8
    out = model.decode_head([f1, f2, f3])
    assert out.shape == (1, 11, 68, 100)  # deconv of the 1/2 map; the segmentor resizes


def test_class_weights_are_used(model):
    assert model.decode_head.loss_decode.class_weight is not None


def test_loss_and_every_parameter_gets_gradient(model):
    losses = loss_and_check_grads(model, 64, 96)
    assert 'decode.loss_ce' in losses


def test_paper_parameter_count():
    m = build_model(load_cfg(CITYSCAPES))
    n = count_params(m)
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.05, n


def test_wrong_head_in_channels_fails_clearly():
    m = build_model(load_cfg(CAMVID, {'model.decode_head.in_channels': (19, 131, 128)}))
    with pytest.raises(ValueError, match='does not match the backbone'):
        predict_logits(m, 64, 96)


def test_bad_head_argument_fails_at_build():
    with pytest.raises(ValueError, match='channels must equal num_classes'):
        build_model(load_cfg(CAMVID, {'model.decode_head.channels': 32}))


# ERFNet's published Cityscapes decoder weights, 1 / ln(1.10 + p) (ESPNet's formula and constant)
ERFNET_CITYSCAPES = [
    2.8149, 6.9850, 3.7890, 9.9428, 9.7702, 9.5111, 10.3114, 10.0265, 4.6323, 9.5608, 7.8698,
    9.5169, 10.3737, 6.6616, 10.2605, 10.2879, 10.2898, 10.4054, 10.1381
]


def test_cityscapes_recipe_uses_official_scale_and_class_weights():
    """The official ESPNet trains and tests on 1024x512 images with 1/ln(1.10 + p) weights."""
    import math
    cfg = load_cfg(CITYSCAPES)
    loss = cfg.model.decode_head.loss_decode
    assert loss.class_weight == ERFNET_CITYSCAPES and loss.avg_non_ignore
    # the weights are 1 / ln(1.10 + p) of class frequencies that sum to less than 1 (void counted)
    freqs = [math.exp(1 / w) - 1.10 for w in loss.class_weight]
    assert all(f > 0 for f in freqs) and 0.8 < sum(freqs) < 1.0
    for split in ('train', 'val', 'test'):
        steps = cfg[f'{split}_dataloader'].dataset.pipeline
        kinds = [s['type'] for s in steps]
        assert 'RandomResize' not in kinds and 'RandomCrop' not in kinds, kinds
        [resize] = [s for s in steps if s['type'] == 'Resize']
        assert tuple(resize['scale']) == (1024, 512) and resize['keep_ratio'] is False
    assert cfg.model.data_preprocessor.size == (512, 1024)
    assert cfg.train_dataloader.batch_size == 12
    model = build_model(cfg)
    assert model.decode_head.loss_decode.class_weight == ERFNET_CITYSCAPES
