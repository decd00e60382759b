"""LinkNet (RTResNet-18 + RTLinkNetHead): sizes, losses, gradients, parameters, pretraining."""
from __future__ import annotations

import os.path as osp
import warnings

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import rtkd  # noqa: F401
from helpers import CONFIG_DIR, tiny_data_options

CAMVID = osp.join(CONFIG_DIR, 'linknet', 'linknet-r18_1xb8-5k_camvid-360x480.py')
CITYSCAPES = osp.join(CONFIG_DIR, 'linknet', 'linknet-r18_1xb8-40k_cityscapes-512x1024.py')
UNREACHABLE = 'http://127.0.0.1:9/resnet18.pth'  # connection refused at once, like no network


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One intra-op thread: the 2-core test machine is shared, and oversubscribed BLAS threads
    make tiny convolutions 20x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def build(path: str, **backbone_overrides):
    init_default_scope('mmseg')
    cfg = Config.fromfile(path)
    cfg.model.backbone.update(backbone_overrides)
    return MODELS.build(cfg.model), cfg


def samples(n: int, h: int, w: int, num_classes: int):
    out = []
    for _ in range(n):
        ds = SegDataSample()
        label = torch.randint(0, num_classes, (1, h, w))
        label[:, -2:, :] = 255  # some ignored pixels
        ds.gt_sem_seg = PixelData(data=label)
        ds.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        out.append(ds)
    return out


@pytest.fixture(scope='module')
def camvid_model():
    torch.manual_seed(0)
    model, _ = build(CAMVID)
    return model


@pytest.mark.parametrize('size', [(64, 96), (67, 99)])
def test_predict_logits_have_input_size(camvid_model, size) -> None:
    model = camvid_model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size), None, mode='predict')
        raw = model(torch.randn(1, 3, *size), None, mode='tensor')
    assert out[0].seg_logits.data.shape == (11, *size)
    assert out[0].pred_sem_seg.data.shape == (1, *size)
    # the head itself is full resolution (4x the 1/4 stem; exact when size % 4 == 0)
    assert raw.shape[2:] == tuple(4 * ((s + 3) // 4) for s in size)


def test_loss_finite_and_every_parameter_gets_gradient(camvid_model) -> None:
    model = camvid_model.train()
    model.zero_grad()
    losses = model(torch.randn(2, 3, 64, 96), samples(2, 64, 96, 11), mode='loss')
    assert set(k for k in losses if 'loss' in k) == {'decode.loss_ce'}
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'parameters without gradient: {missing}'


def test_paper_structure(camvid_model) -> None:
    cfg = Config.fromfile(CAMVID)
    head = camvid_model.decode_head
    assert [type(d.up.conv).__name__ for d in head.decoders] == ['ConvTranspose2d'] * 4
    # decoder block m -> n: 1x1 m -> m/4, full conv m/4 -> m/4, 1x1 m/4 -> n
    d4 = head.decoders[3]
    assert (d4.reduce.conv.in_channels, d4.reduce.conv.out_channels) == (512, 128)
    assert (d4.up.conv.stride, d4.expand.conv.out_channels) == ((2, 2), 256)
    assert head.conv_seg.kernel_size == (2, 2) and head.conv_seg.stride == (2, 2)
    assert cfg.model.decode_head.loss_decode.class_weight is not None
    assert cfg.optim_wrapper.optimizer.type == 'RMSprop'


def test_param_count_cityscapes() -> None:
    model, cfg = build(CITYSCAPES)
    n = sum(p.numel() for p in model.parameters())
    assert cfg.model.decode_head.num_classes == 19
    assert abs(n - 11.5e6) / 11.5e6 < 0.05, n


def test_unreachable_pretrained_weights_fall_back_to_random_init() -> None:
    model, _ = build(CAMVID, init_cfg=dict(type='Pretrained', checkpoint=UNREACHABLE))
    with pytest.warns(RuntimeWarning, match='RANDOM initialisation'):
        model.init_weights()
    w = model.backbone.conv1.weight
    assert torch.isfinite(w).all() and w.std() > 0
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 48), None, mode='tensor').shape[1] == 11


def test_missing_local_checkpoint_fails_early() -> None:
    model, _ = build(CAMVID, init_cfg=dict(type='Pretrained', checkpoint='no/such/r18.pth'))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        model.init_weights()


def test_bad_decoder_strides_fail_early() -> None:
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='dec_strides'):
        MODELS.build(dict(type='RTLinkNetHead', num_classes=3, dec_strides=(2, 2)))


def test_camvid_config_trains_two_iterations(tiny_camvid, tmp_path) -> None:
    """The real config (torchvision:// weights) builds and trains on a tiny CamVid, offline."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(CAMVID)
    cfg.merge_from_dict(tiny_data_options(tiny_camvid))
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomCrop', crop_size=(32, 48)),
        dict(type='PackSegInputs')
    ]
    cfg.model.data_preprocessor.size = (32, 48)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100, save_last=False)
    cfg.default_hooks.logger.interval = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # training only
    cfg.work_dir = str(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        runner = Runner.from_cfg(cfg)
        runner.train()
    assert runner.iter == 2


def test_class_weighted_loss_matches_pytorch_with_ignored_pixels() -> None:
    """mmseg#3734 (class_weight + label 255 crash) is fixed by rtkd.compat: torch's weighted
    mean."""
    import torch.nn.functional as F
    model, cfg = build(CAMVID)
    head = model.decode_head
    torch.manual_seed(0)
    logits = torch.randn(2, 11, 8, 12)
    data = samples(2, 8, 12, 11)
    label = torch.stack([d.gt_sem_seg.data for d in data]).squeeze(1)
    weight = torch.tensor(cfg.model.decode_head.loss_decode.class_weight)
    expected = F.cross_entropy(logits, label, weight=weight, ignore_index=255)
    got = head.loss_by_feat(logits, data)['loss_ce']
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_torchvision_resnet18_checkpoint_fits_key_for_key(tmp_path) -> None:
    """ImageNet ResNet-18 weights (torchvision layout) load into every encoder tensor."""
    import torchvision
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None).state_dict()
    path = str(tmp_path / 'resnet18_tv.pth')
    torch.save(ref, path)
    model, _ = build(CAMVID, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    own = model.backbone.state_dict()
    assert set(own) == {k for k in ref if not k.startswith('fc.')}
    for k, v in own.items():
        assert torch.equal(v, ref[k]), k


def test_transposed_conv_reaches_odd_skip_sizes_exactly() -> None:
    from rtkd.models.decode_heads.linknet_head import transposed_conv_to
    deconv = torch.nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
    x = torch.randn(1, 4, 3, 4)
    assert transposed_conv_to(deconv, x, (5, 7)).shape[2:] == (5, 7)  # odd: output_padding 0
    assert transposed_conv_to(deconv, x, (6, 8)).shape[2:] == (6, 8)  # even: output_padding 1
    exact = transposed_conv_to(deconv, x, (6, 8))
    torch.testing.assert_close(exact, deconv(x))
    assert transposed_conv_to(deconv, x, (9, 9)).shape[2:] == (9, 9)  # unreachable: resized


def test_cityscapes_weights_follow_the_linknet_formula() -> None:
    """1 / ln(1.02 + h / max h) (official LinkNet), on the class frequencies ERFNet's published
    1 / ln(1.10 + p) weights encode - not ERFNet's weights themselves (another formula)."""
    import math
    erfnet = [
        2.8149201869965, 6.9850029945374, 3.7890393733978, 9.9428062438965, 9.7702074050903,
        9.5110931396484, 10.311357498169, 10.026463508606, 4.6323022842407, 9.5608062744141,
        7.8698215484619, 9.5168733596802, 10.373730659485, 6.6616044044495, 10.260489463806,
        10.287888526917, 10.289801597595, 10.405355453491, 10.138095855713
    ]  # erfnet_pytorch train/main.py
    freq = [math.exp(1 / w) - 1.10 for w in erfnet]
    expected = [1 / math.log(1.02 + f / max(freq)) for f in freq]
    weights = Config.fromfile(CITYSCAPES).model.decode_head.loss_decode.class_weight
    assert weights == pytest.approx(expected, abs=1e-4)
    assert weights[0] == pytest.approx(1 / math.log(2.02), abs=1e-4)  # road, the largest class
