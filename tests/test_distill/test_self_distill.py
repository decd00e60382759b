"""Self-distillation (BYOT, Zhang et al. ICCV 2019) through the Distiller: no teacher config.

A tiny mmseg student (test_distiller.seg_model, ResNetV1c-18 with 4 base channels, FCN decode
head + FCN auxiliary head, all at output stride 8) teaches itself: its auxiliary head's logits
learn from the final head's logits (KD) and a connector of its feature from the deepest feature
(hint), both targets being student taps used as ``teacher=``. Checked: the loss terms against
hand computations, that no distillation gradient reaches the targets, the build errors, the
export of a run with a self-distillation-only head (strictly loadable into the plain student),
a 2-iteration Runner run with export and resume, and the shipped Fast-SCNN recipe.
"""
from __future__ import annotations

import copy
import os.path as osp
import runpy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import rtkd  # noqa: F401
from rtkd.distill.export import EXPORT_INFO_KEY, student_state_dict
from helpers import CE, ROOT, batch, seg_model, write_config

RECIPE = osp.join(
    ROOT, 'configs/distill/seg/byot/'
    'byot_logits-feat_self_fast-scnn_1xb8-6k_camvid-240x320.py')
PLAIN = osp.join(ROOT, 'configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py')

# tiny student (base 4): decode head FCN on stage 3 (32 ch -> 8 ch feature), aux FCN on stage 2
# (16 ch -> 4 ch feature); logits of both at 1/8 (dilated ResNet)
TAPS = dict(
    t_logits='student:decode_head.conv_seg',
    t_feat='student:decode_head.convs',
    s_logits='student:auxiliary_head.conv_seg',
    s_feat='student:auxiliary_head.convs')
CONNECTORS = dict(s_feat=dict(type='ConvBNConnector', in_channels=4, out_channels=8))
LOSSES = dict(
    loss_kd=dict(
        type='PixelWiseKD', tau=3.0, loss_weight=0.1, student='s_logits', teacher='t_logits'),
    loss_hint=dict(type='FitNetsLoss', loss_weight=0.5, student='s_feat', teacher='t_feat'))


@MODELS.register_module(name='_TestUndetachedMSE', force=True)
class _TestUndetachedMSE(nn.Module):
    """MSE that does *not* detach its teacher input: only the Distiller can stop the gradient."""

    extra_inputs = ()

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student, teacher, **extra):
        return ((student - teacher)**2).mean() * self.loss_weight


def byot(**overrides) -> nn.Module:
    cfg = dict(
        type='Distiller',
        student=dict(model=seg_model(4, aux=True), scope='mmseg'),
        taps=dict(TAPS),
        connectors=copy.deepcopy(CONNECTORS),
        losses=copy.deepcopy(LOSSES))
    cfg.update(overrides)
    return MODELS.build(cfg)


def aux_list_model(extra_head: bool) -> dict:
    """seg_model(4) with a list of aux heads: the plain one, plus (optionally) a BYOT-only head
    on stage 1 (8 ch) that the plain student does not have."""
    model = seg_model(4)
    plain = seg_model(4, aux=True)['auxiliary_head']
    heads = [plain]
    if extra_head:
        heads.append(dict(plain, in_channels=8, in_index=1, loss_decode=dict(CE, loss_weight=0.3)))
    model['auxiliary_head'] = heads
    return model


def test_loss_terms_match_a_hand_computation():
    torch.manual_seed(0)
    model = byot()
    assert model._teacher == [] and 'teacher' not in model._taps and model.teacher_cache is None
    assert 'teacher none (self-distillation' in model.summary()
    got = {}

    def keep(name):

        def hook(module, args, out):
            got[name] = out.detach().double()

        return hook

    s = model.student
    handles = [
        s.decode_head.conv_seg.register_forward_hook(keep('t_logits')),
        s.decode_head.convs.register_forward_hook(keep('t_feat')),
        s.auxiliary_head.conv_seg.register_forward_hook(keep('s_logits')),
        model.connectors['s_feat'].register_forward_hook(keep('s_feat_connected'))
    ]
    model.train()
    data = model.data_preprocessor(batch(), True)
    out = model.loss(**data)
    for h in handles:
        h.remove()
    assert {'decode.loss_ce', 'aux.loss_ce', 'loss_kd', 'loss_hint'} <= set(out)
    tau = 3.0
    log_p_t = F.log_softmax(got['t_logits'] / tau, dim=1)
    log_p_s = F.log_softmax(got['s_logits'] / tau, dim=1)
    kd = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean() * tau**2 * 0.1
    hint = ((got['s_feat_connected'] - got['t_feat'])**2).mean() * 0.5
    assert float(out['loss_kd']) == pytest.approx(float(kd), rel=1e-5)
    assert float(out['loss_hint']) == pytest.approx(float(hint), rel=1e-5)
    assert float(out['loss_kd']) > 0 and float(out['loss_hint']) > 0


def _grads(module: nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize('losses', ['byot', 'undetached'])
def test_no_distillation_gradient_into_the_targets(losses):
    """BYOT's code detaches the deepest outputs (``temp4.detach()``, ``final_fea.detach()``)."""
    torch.manual_seed(0)
    if losses == 'byot':
        model = byot()
    else:  # a loss that does not detach: the Distiller must do it
        model = byot(
            connectors=None,
            losses=dict(
                loss_x=dict(type='_TestUndetachedMSE', student='s_logits', teacher='t_logits')))
    model.train()
    data = model.data_preprocessor(batch(), True)
    out = model.loss(**data)
    distill = sum(v for k, v in out.items() if k in model.losses)
    distill.backward(retain_graph=True)
    s = model.student
    assert _grads(s.decode_head) == 0  # the final head: no gradient from the distillation terms
    assert _grads(s.auxiliary_head) > 0  # the shallow head learns from them
    assert _grads(s.backbone.layer1) > 0  # ... and the sections below it
    assert _grads(s.backbone.layer4) == 0  # only the deepest head reads stage 4
    s.zero_grad()
    out['decode.loss_ce'].backward()  # the final head still learns from its labels
    assert _grads(s.decode_head) > 0


def test_build_errors():
    teacher_tap = dict(TAPS, t_logits='teacher:decode_head.conv_seg')
    with pytest.raises(
            ValueError, match="tap 't_logits' .* reads the teacher but no teacher is "
            'given'):
        byot(taps=teacher_tap)
    with pytest.raises(ValueError, match='a teacher is given but no tap reads it'):
        byot(teacher=dict(model=seg_model(4), scope='mmseg', checkpoint=None))
    with pytest.raises(
            ValueError,
            match="connector on tap 't_feat' has trainable parameters, "
            'but the tap is the detached target'):
        byot(
            connectors=dict(t_feat=dict(type='ConvBNConnector', in_channels=8, out_channels=8)),
            losses=dict(loss_hint=dict(type='FitNetsLoss', student='s_feat', teacher='t_feat')))
    with pytest.raises(KeyError, match="no module 'auxiliary_haed'.*auxiliary_head"):
        byot(export_exclude=['auxiliary_haed'])
    with pytest.raises(ValueError, match="no 'student.' prefix"):
        byot(export_exclude=['student.auxiliary_head'])
    # a parameter-free connector on a target tap is fine (e.g. resizing it)
    byot(
        connectors=dict(t_logits=dict(type='ResizeConnector', size=(2, 3))),
        losses=dict(loss_kd=dict(LOSSES['loss_kd'])))


def test_self_distillation_only_head_is_left_out_of_the_export(tmp_path):
    torch.manual_seed(0)
    taps = dict(
        TAPS, s_logits='student:auxiliary_head.1.conv_seg', s_feat='student:auxiliary_head.0.convs')
    model = byot(
        student=dict(model=aux_list_model(extra_head=True), scope='mmseg'),
        taps=taps,
        export_exclude=['auxiliary_head.1'])
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log = model.train_step(batch(), optim)
    assert {'aux_0.loss_ce', 'aux_1.loss_ce', 'loss_kd', 'loss_hint'} <= set(log)
    with DefaultScope.overwrite_default_scope('mmseg'):
        plain = MODELS.build(aux_list_model(extra_head=False))
    sd = model.student_state_dict()
    assert not any(k.startswith('auxiliary_head.1.') for k in sd)
    plain.load_state_dict(sd, strict=True)
    assert torch.equal(plain.auxiliary_head[0].conv_seg.weight,
                       model.student.auxiliary_head[0].conv_seg.weight)
    # from a checkpoint file alone (extract_student.py, load_from): the list travels with it
    full = model.state_dict()
    assert full[EXPORT_INFO_KEY] == dict(export_exclude=['auxiliary_head.1'])
    plain.load_state_dict(student_state_dict(full), strict=True)
    ddp_like = {f'module.{k}': v for k, v in full.items()}
    plain.load_state_dict(student_state_dict(ddp_like), strict=True)
    # without the exclusion the export does not fit the plain student
    model_all = byot(student=dict(model=aux_list_model(extra_head=True), scope='mmseg'), taps=taps)
    assert EXPORT_INFO_KEY not in model_all.state_dict()
    with pytest.raises(RuntimeError, match='Unexpected key.*auxiliary_head.1'):
        plain.load_state_dict(model_all.student_state_dict(), strict=True)


HOOKS = ("custom_hooks = [dict(type='StudentCheckpointHook', interval=2)]\n"
         "model_wrapper_cfg = dict(type='DistillerDataParallel')\n")


def test_runner_run_export_and_resume(tiny_camvid, tmp_path):
    work = str(tmp_path / 'work')
    taps = dict(
        TAPS, s_logits='student:auxiliary_head.1.conv_seg', s_feat='student:auxiliary_head.0.convs')
    recipe = dict(
        type='Distiller',
        student=dict(model=aux_list_model(extra_head=True), scope='mmseg'),
        taps=taps,
        connectors=CONNECTORS,
        losses=LOSSES,
        export_exclude=['auxiliary_head.1'])
    cfg_file = write_config(str(tmp_path / 'byot.py'), tiny_camvid, work, recipe, extra=HOOKS)
    runner = Runner.from_cfg(Config.fromfile(cfg_file))
    runner.train()
    assert {'train/loss_kd', 'train/loss_hint', 'train/decode.loss_ce',
            'train/aux_1.loss_ce'} <= set(runner.message_hub.log_scalars)
    ckpt = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu')
    assert ckpt['state_dict'][EXPORT_INFO_KEY] == dict(export_exclude=['auxiliary_head.1'])
    assert any(k.startswith('student.auxiliary_head.1.') for k in ckpt['state_dict'])
    kd_metrics = runner.test()

    out = str(tmp_path / 'student.pth')
    runpy.run_path(osp.join(ROOT, 'tools/model_converters/extract_student.py'))['main'](
        [osp.join(work, 'iter_2.pth'), out])
    a = torch.load(out, map_location='cpu')['state_dict']
    b = torch.load(osp.join(work, 'student_latest.pth'), map_location='cpu')['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    s_file = write_config(
        str(tmp_path / 'plain.py'),
        tiny_camvid,
        str(tmp_path / 's'),
        aux_list_model(extra_head=False),
        extra="default_scope = 'mmseg'\n")
    with DefaultScope.overwrite_default_scope('mmseg'):
        plain = MODELS.build(Config.fromfile(s_file).model)
    plain.load_state_dict(b, strict=True)
    s_cfg = Config.fromfile(s_file)
    s_cfg.load_from = osp.join(work, 'iter_2.pth')  # a distiller checkpoint in the plain config
    s_metrics = Runner.from_cfg(s_cfg).test()
    assert s_metrics['mIoU'] == pytest.approx(kd_metrics['mIoU'])

    cfg = Config.fromfile(
        write_config(
            str(tmp_path / 'byot3.py'), tiny_camvid, work, recipe, max_iters=3, extra=HOOKS))
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3 and int(runner.model.distill_iter) == 3


def test_fast_scnn_recipe_steps_and_exports_into_the_plain_config():
    cfg = Config.fromfile(RECIPE)
    assert 'teacher' not in cfg.model
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
        plain = MODELS.build(Config.fromfile(PLAIN).model)
    assert type(model.student.backbone).__name__ == 'RTFastSCNN' and model._teacher == []
    model.data_preprocessor.size = (64, 96)  # tiny crop instead of 240x320
    before = model.student.decode_head.conv_seg.weight.detach().clone()
    log = model.train_step(batch(2, 64, 96), ow)
    for name in ('loss_kd0', 'loss_kd1', 'loss_hint0', 'loss_hint1', 'aux_0.loss_ce',
                 'aux_1.loss_ce', 'decode.loss_ce'):
        assert torch.isfinite(log[name]) and float(log[name]) > 0, name
    assert not torch.equal(before, model.student.decode_head.conv_seg.weight)
    plain.load_state_dict(model.student_state_dict(), strict=True)  # connectors are not in it
    assert not any(k.startswith('connectors.') for k in model.student_state_dict())
