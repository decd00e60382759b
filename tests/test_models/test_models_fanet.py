"""FANet-18/34 (RTFANet + RTFANetHead + 2 FCN aux heads): sizes, losses, gradients, params."""
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

CFG = osp.join(CONFIG_DIR, 'fanet')
CAMVID18 = osp.join(CFG, 'fanet-r18_1xb8-10k_camvid-360x480.py')
CAMVID34 = osp.join(CFG, 'fanet-r34_1xb8-10k_camvid-360x480.py')
CITY18 = osp.join(CFG, 'fanet-r18_1xb16-40k_cityscapes-512x1024.py')
CITY34 = osp.join(CFG, 'fanet-r34_1xb16-40k_cityscapes-512x1024.py')


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


@pytest.mark.parametrize('path, crop', [(CAMVID18, (360, 480)), (CAMVID34, (360, 480)),
                                        (CITY18, (512, 1024)), (CITY34, (512, 1024))])
def test_official_ohem_loss_on_all_outputs(path, crop) -> None:
    """The official OhemCELoss2D (mean over kept pixels), not mmseg's sampler + CE."""
    cfg = Config.fromfile(path)
    heads = [cfg.model.decode_head, *cfg.model.auxiliary_head]
    assert all(h.get('sampler') is None for h in heads)
    for head, weight in zip(heads, (1.0, 0.5, 0.5)):
        loss = head.loss_decode
        assert (loss.type, loss.thresh, loss.loss_weight) == ('OhemCrossEntropyLoss', 0.7, weight)
        assert loss.min_kept == crop[0] * crop[1] // 16  # the official n_min per image
    from rtkd.models.losses import OhemCrossEntropyLoss
    model, _ = build(path)
    assert all(
        isinstance(h.loss_decode, OhemCrossEntropyLoss) and h.sampler is None
        for h in [model.decode_head, *model.auxiliary_head])


def official_lr(it: int,
                max_iter: int,
                lr0: float = 1e-2,
                warmup: int = 1000,
                start: float = 1e-5,
                power: float = 0.9) -> float:
    """``AdaOptimizer.get_lr`` of the official FANet code (Train/ptsemseg/optimizers)."""
    if it <= warmup:
        return start * ((lr0 / start)**(1. / warmup))**it
    return lr0 * (1 - (it - warmup) / (max_iter - warmup))**power


@pytest.mark.parametrize('path', [CAMVID18, CITY18])
def test_official_warmup_and_poly_schedule(path) -> None:
    """The configs' lr equals the official geometric warm-up + poly at every iteration."""
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(path)
    param = torch.nn.Parameter(torch.zeros(1))
    opt_cfg = dict(cfg.optim_wrapper.optimizer)
    assert opt_cfg.pop('type') == 'SGD'
    assert (opt_cfg['lr'], opt_cfg['momentum'], opt_cfg['weight_decay']) == (0.01, 0.9, 5e-4)
    optimizer = torch.optim.SGD([param], **opt_cfg)
    init_default_scope('mmseg')
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer)) for s in cfg.param_scheduler]
    worst = 0.0
    for it in range(cfg.train_cfg.max_iters):
        lr = optimizer.param_groups[0]['lr']
        ref = official_lr(it, cfg.train_cfg.max_iters)
        worst = max(worst, abs(lr - ref) / ref)
        for s in schedulers:
            s.step()
    assert worst < 1e-9, worst


def test_up_padding_reproduces_the_official_padded_1x1_conv() -> None:
    init_default_scope('mmseg')
    cfg = Config.fromfile(CAMVID18).model.backbone
    cfg.resnet_cfg.init_cfg = None
    assert cfg.up_padding == 0
    plain = MODELS.build(cfg)
    padded = MODELS.build(dict(cfg, up_padding=1))
    ups = [s.up for s in padded.stages if s.up is not None]
    assert [u.conv.padding for u in ups] == [(1, 1)] * 3
    assert all(s.up is None or s.up.conv.padding == (0, 0) for s in plain.stages)
    padded.load_state_dict(plain.state_dict())  # same parameters, different layer
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = plain.eval()(x), padded.eval()(x)
    assert [t.shape for t in a] == [t.shape for t in b]
    assert not torch.allclose(a[0], b[0])
    with pytest.raises(ValueError, match='up_padding'):
        MODELS.build(dict(cfg, up_padding=2))


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
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomCrop', crop_size=(48, 64)),
        dict(type='PackSegInputs')
    ]
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
    # the Runner steps the schedulers as test_official_warmup_and_poly_schedule does
    assert runner.optim_wrapper.get_lr()['lr'][0] == pytest.approx(official_lr(2, 10000), rel=1e-9)


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
