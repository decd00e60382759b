"""Classification distillation (mmpretrain) and mmpretrain backbones as segmentation students.

Tiny data (helpers.make_tiny_folder): a CustomDataset folder (2 classes x 4 PNGs, 32x32). Tiny
CIFAR ResNets (ResNet-18 / ResNet-34 layouts with 8 base channels).
"""
from __future__ import annotations

import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

import rtkd  # noqa: F401
from helpers import ROOT, batch, cls_runner_config, make_tiny_folder

CLS_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/distill/cls/**/*.py'), recursive=True))
SEG_MMPRETRAIN = osp.join(ROOT, 'configs/distill/seg/mmpretrain_student')


@pytest.fixture(scope='module')
def tiny_folder(tmp_path_factory) -> str:
    return make_tiny_folder(str(tmp_path_factory.mktemp('cls')))


def classifier(depth: int, base: int = 8) -> dict:
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=2,
            mean=[125.3, 123.0, 113.9],
            std=[51.6, 50.8, 51.3],
            to_rgb=True),
        backbone=dict(
            type='ResNet_CIFAR',
            depth=depth,
            base_channels=base,
            stem_channels=base,
            num_stages=4,
            out_indices=(3, ),
            style='pytorch'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=2,
            in_channels=base * 8,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            topk=(1, )))


@pytest.fixture(scope='module')
def cls_teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls_teacher')
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmpretrain'\nmodel = {classifier(34, 16)!r}\n")
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        t = MODELS.build(classifier(34, 16))
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=t.state_dict()), ckpt)
    return cfg_path, ckpt


def kd_distiller(teacher, hint: bool = True) -> dict:
    cfg = dict(
        type='Distiller',
        student=dict(model=classifier(18, 8), scope='mmpretrain'),
        teacher=dict(config=teacher[0], checkpoint=teacher[1]),
        taps=dict(s_logits='student:head.fc', t_logits='teacher:head.fc'),
        losses=dict(
            loss_kd=dict(
                type='HintonKD', tau=4.0, loss_weight=1.0, student='s_logits', teacher='t_logits')))
    if hint:
        cfg['taps'].update(s_feat='student:backbone[0]', t_feat='teacher:backbone[0]')
        cfg['connectors'] = dict(
            s_feat=dict(type='ConvBNConnector', in_channels=64, out_channels=128))
        cfg['losses']['loss_hint'] = dict(type='FitNetsLoss', student='s_feat', teacher='t_feat')
    return cfg


def cls_batch(n: int = 2) -> dict:
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 255, (3, 32, 32), generator=g, dtype=torch.uint8) for _ in range(n)]
    samples = [DataSample().set_gt_label(i % 2) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def test_kd_zero_when_student_equals_teacher_and_gradients(cls_teacher):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        same = dict(
            type='Distiller',
            student=dict(config=cls_teacher[0]),
            teacher=dict(config=cls_teacher[0], checkpoint=cls_teacher[1]),
            taps=dict(
                s='student:head.fc',
                t='teacher:head.fc',
                sf='student:backbone[0]',
                tf='teacher:backbone[0]'),
            losses=dict(
                loss_kd=dict(type='HintonKD', tau=4.0, student='s', teacher='t'),
                loss_hint=dict(type='FitNetsLoss', student='sf', teacher='tf')))
        model = MODELS.build(same)
        model.student.load_state_dict(model.teacher.state_dict())
        model.train()
        model.student.eval()  # same BN behaviour as the (eval) teacher
        d = model.data_preprocessor(cls_batch(), True)
        losses = model.loss(d['inputs'], d['data_samples'])
        assert losses['loss_kd'].item() == pytest.approx(0.0, abs=1e-7)
        assert losses['loss_hint'].item() == pytest.approx(0.0, abs=1e-10)
        assert losses['loss'].item() > 0  # the student's own CE is still there

        model = MODELS.build(kd_distiller(cls_teacher)).train()
        d = model.data_preprocessor(cls_batch(), True)
        losses = model.loss(d['inputs'], d['data_samples'])
        (losses['loss_kd'] + losses['loss_hint']).backward()
    assert losses['loss_kd'].item() > 0 and losses['loss_hint'].item() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.head.fc.weight.grad.abs().sum() > 0
    assert model.connectors['s_feat'][0].conv.weight.grad is not None
    assert not any(k.startswith('teacher') for k in model.state_dict())


def test_cls_runner_train_test_and_student_export(tiny_folder, cls_teacher, tmp_path):
    work = str(tmp_path / 'work')
    cfg = Config.fromfile(
        cls_runner_config(str(tmp_path / 'kd.py'), tiny_folder, work, kd_distiller(cls_teacher)))
    cfg.custom_hooks = [dict(type='StudentCheckpointHook', interval=2)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert {'train/loss_kd', 'train/loss_hint', 'train/loss'} <= \
        set(runner.message_hub.log_scalars)
    kd = runner.test()
    assert 'accuracy/top1' in kd
    out = str(tmp_path / 'student.pth')
    import runpy
    runpy.run_path(osp.join(ROOT, 'tools/model_converters/extract_student.py'))['main'](
        [osp.join(work, 'iter_2.pth'), out])
    s_cfg = Config.fromfile(
        cls_runner_config(
            str(tmp_path / 'student.py'), tiny_folder, str(tmp_path / 's'), classifier(18, 8)))
    s_cfg.load_from = out
    plain = Runner.from_cfg(s_cfg).test()
    assert plain['accuracy/top1'] == pytest.approx(kd['accuracy/top1'])


# ---------------------------------------------------------------------------------------------
# shipped recipes build (OpenMMLab-URL teachers are unreachable here: checkpoint=None)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('path', CLS_CONFIGS, ids=[osp.basename(p) for p in CLS_CONFIGS])
def test_cls_recipes_build(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'Distiller' and cfg.default_scope == 'mmpretrain'
    url = cfg.model.teacher.checkpoint
    assert url.startswith('https://download.openmmlab.com/mmclassification/')
    model_cfg = cfg.model.copy()
    model_cfg.teacher = dict(cfg.model.teacher, checkpoint=None)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    # the student's normalisation comes from its config's top-level data_preprocessor
    assert model.data_preprocessor._enable_normalize
    assert float(model.data_preprocessor.mean.flatten()[0]) == pytest.approx(
        float(torch.tensor(cfg.data_preprocessor.mean)[0]))
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), mode='tensor')
    assert out.shape == (1, model.student.head.num_classes)


# ---------------------------------------------------------------------------------------------
# item 3: an mmpretrain backbone inside an mmseg student, distilled from the CamVid teacher
# ---------------------------------------------------------------------------------------------
def test_mmpretrain_backbone_seg_student_distils():
    """The shipped recipe builds and takes one training step (backbone frozen, CWD on logits)."""
    from mmengine.optim import OptimWrapper
    path = osp.join(SEG_MMPRETRAIN, 'cwd_logits_bisenetv2_mmpretrain-mobilenetv2_1xb8-2k_camvid-'
                    '360x480.py')
    if not osp.isfile(osp.join(ROOT, '..', 'shared', 'teachers', 'bisenetv2_camvid-240x320.pth')):
        pytest.skip('shared CamVid teacher not available')
    cfg = Config.fromfile(path)
    # no download here: the student's ImageNet init is not applied (init_weights is not called)
    cfg.model.student = dict(
        config=cfg.model.student, cfg_options={'model.data_preprocessor.size': (32, 48)})
    cwd = os.getcwd()
    os.chdir(ROOT)  # recipes are run from the repo root ('../shared/...' paths)
    try:
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(cfg.model)
    finally:
        os.chdir(cwd)
    from mmpretrain.models.backbones import MobileNetV2
    assert isinstance(model.student.backbone, MobileNetV2)
    model.train()
    before = {n: p.detach().clone() for n, p in model.student.named_parameters()}
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    logs = model.train_step(batch(), ow)
    assert {'loss_cwd', 'decode.loss_ce'} <= set(logs) and logs['loss_cwd'].item() > 0
    after = dict(model.student.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before if n.startswith('backbone.'))
    assert not torch.equal(before['decode_head.conv_seg.weight'],
                           after['decode_head.conv_seg.weight'])


def test_teacher_with_other_channel_order_gets_flipped_inputs(cls_teacher, tmp_path):
    """mmpretrain stores the channel flag as ``to_rgb``: a BGR teacher sees flipped inputs."""
    bgr = classifier(34, 16)
    bgr['data_preprocessor'] = dict(bgr['data_preprocessor'], to_rgb=False)
    path = str(tmp_path / 'bgr_teacher.py')
    with open(path, 'w') as f:
        f.write(f"default_scope = 'mmpretrain'\nmodel = {bgr!r}\n")
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        flipped = MODELS.build(
            dict(
                kd_distiller(cls_teacher, hint=False),
                teacher=dict(config=path, checkpoint=cls_teacher[1])))
        same = MODELS.build(kd_distiller(cls_teacher, hint=False))
    assert same._teacher_norm is None
    assert flipped._teacher_norm is not None and flipped._teacher_norm[-1] is True
