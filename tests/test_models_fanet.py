"""FANet-18/34 (FANet backbone + FANetHead + 2 FCN aux heads): sizes, losses, gradients, params."""
from __future__ import annotations

import os.path as osp
import warnings

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

import rtkd  # noqa: F401
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from conftest import CONFIG_DIR, tiny_data_options

CFG = osp.join(CONFIG_DIR, 'fanet')
CAMVID18 = osp.join(CFG, 'fanet-r18_10k_camvid-360x480.py')
CAMVID34 = osp.join(CFG, 'fanet-r34_10k_camvid-360x480.py')
CITY18 = osp.join(CFG, 'fanet-r18_40k_cityscapes-512x1024.py')
CITY34 = osp.join(CFG, 'fanet-r34_40k_cityscapes-512x1024.py')


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One intra-op thread: the 2-core test machine is shared, and oversubscribed BLAS threads
    make tiny convolutions 20x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def build(path: str):
    init_default_scope('mmseg')
    cfg = Config.fromfile(path)
    return MODELS.build(cfg.model), cfg


def samples(n: int, h: int, w: int, num_classes: int):
    out = []
    for _ in range(n):
        ds = SegDataSample()
        label = torch.randint(0, num_classes, (1, h, w))
        label[:, :2, :] = 255
        ds.gt_sem_seg = PixelData(data=label)
        ds.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        out.append(ds)
    return out


@pytest.fixture(scope='module')
def fanet18():
    torch.manual_seed(0)
    return build(CAMVID18)[0]


@pytest.mark.parametrize('size', [(64, 96), (67, 99)])
def test_predict_logits_have_input_size(fanet18, size) -> None:
    model = fanet18.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size), None, mode='predict')
        feats = model.extract_feat(torch.randn(1, 3, *size))
        raw = model(torch.randn(1, 3, *size), None, mode='tensor')
    assert out[0].seg_logits.data.shape == (11, *size)
    # backbone outputs: s_1, s_3, s_4 at 1/8, 1/32, 1/64 (ceil), 128 channels
    expect = [tuple(-(-s // f) for s in size) for f in (8, 32, 64)]
    assert [tuple(f.shape[2:]) for f in feats] == expect
    assert all(f.shape[1] == 128 for f in feats)
    assert raw.shape[1:] == (11, *expect[0])  # output stride 8


def test_loss_has_aux_heads_and_every_parameter_gets_gradient(fanet18) -> None:
    model = fanet18.train()
    model.zero_grad()
    losses = model(torch.randn(2, 3, 64, 96), samples(2, 64, 96, 11), mode='loss')
    keys = sorted(k for k in losses if k.endswith('loss_ce'))
    assert keys == ['aux_0.loss_ce', 'aux_1.loss_ce', 'decode.loss_ce']
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'parameters without gradient: {missing}'
    assert [h.loss_decode.loss_weight for h in model.auxiliary_head] == [0.5, 0.5]
    assert all(h.sampler is not None for h in [model.decode_head, *model.auxiliary_head])


def test_fanet34_forward_and_structure() -> None:
    torch.manual_seed(0)
    model, _ = build(CAMVID34)
    resnet = model.backbone.resnet
    assert [len(getattr(resnet, n)) for n in resnet.res_layers] == [3, 4, 6, 3]
    assert resnet.strides == (2, 2, 2, 2) and not resnet.deep_stem
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 67, 99), None, mode='predict')
    assert out[0].seg_logits.data.shape == (11, 67, 99)


@pytest.mark.parametrize('path, expected', [(CITY18, 13.8e6), (CITY34, 23.9e6)])
def test_param_count_cityscapes(path, expected) -> None:
    model, cfg = build(path)
    n = sum(p.numel() for p in model.parameters())
    assert cfg.model.decode_head.num_classes == 19
    assert abs(n - expected) / expected < 0.05, n


def test_every_stage_has_fast_attention(fanet18) -> None:
    from rtkd.models.layers import FastAttention
    stages = fanet18.backbone.stages
    assert all(isinstance(s.attention, FastAttention) for s in stages)
    assert [s.attention.in_channels for s in stages] == [64, 128, 256, 512]


def test_camvid_config_trains_two_iterations(tiny_camvid, tmp_path) -> None:
    """The real config (torchvision:// weights) builds and trains on a tiny CamVid, offline."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(CAMVID18)
    cfg.merge_from_dict(tiny_data_options(tiny_camvid))
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
        dict(type='RandomCrop', crop_size=(48, 64)), dict(type='PackSegInputs')]
    cfg.model.data_preprocessor.size = (48, 64)
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


def test_torchvision_checkpoint_fits_nested_encoder(tmp_path) -> None:
    """FANet's ResNet (extra stride, plain stem) takes torchvision ImageNet weights as they are."""
    import torchvision
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None).state_dict()
    path = str(tmp_path / 'resnet18_tv.pth')
    torch.save(ref, path)
    init_default_scope('mmseg')
    cfg = Config.fromfile(CAMVID18)
    cfg.model.backbone.resnet_cfg.init_cfg = dict(type='Pretrained', checkpoint=path)
    model = MODELS.build(cfg.model)
    model.init_weights()
    own = model.backbone.resnet.state_dict()
    # the extra stride gives block layer1.0 a 1x1 stride-2 shortcut that ImageNet ResNets lack
    # (as in the official code, it stays randomly initialised); everything else is loaded
    extra = {k for k in own if k.startswith('layer1.0.downsample.')}
    assert extra and set(own) - extra == {k for k in ref if not k.startswith('fc.')}
    for k, v in own.items():
        if k not in extra:
            assert torch.equal(v, ref[k]), k
