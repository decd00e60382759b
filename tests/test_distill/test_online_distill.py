"""Online distillation (``CohortDistiller``): deep mutual learning and a trainable teacher.

Unit tests use tiny mmseg models (tests/helpers/models.py ``seg_model``, 32x48 inputs, float64
where a value is computed by hand); Runner tests use the tiny CamVid (tests/helpers/data.py):
train/val/test, checkpoints with every member, export of one member, ``--resume`` equal to an
uninterrupted run, 2-process DDP; the two shipped recipes are built and stepped.
"""
from __future__ import annotations

import copy
import glob
import os
import os.path as osp
import runpy
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import rtkd  # noqa: F401  (registers everything)
from rtkd.distill import CohortDistiller, CohortOptimWrapperConstructor
from rtkd.distill.export import adapt_checkpoint_kind, extract_student
from helpers import RECIPE_NAME, ROOT, batch, needs_torchrun, run_torchrun, seg_model, write_config

DML_RECIPE = osp.join(
    ROOT, 'configs/distill/seg/dml/'
    'dml_logits_fast-scnn_fast-scnn_1xb8-6k_camvid-240x320.py')
TT_RECIPE = osp.join(
    ROOT, 'configs/distill/seg/dml/dml-trainable-teacher_logits_'
    'bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py')
TEACHER_CKPT = osp.join(ROOT, '..', 'shared', 'teachers', 'bisenetv2_camvid-240x320_ft3000.pth')


@MODELS.register_module(name='_TestNoDetachMSE', force=True)
class _TestNoDetachMSE(nn.Module):
    """MSE that does NOT detach its teacher input (the cohort must do it)."""

    extra_inputs = ()

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student, teacher, **extra):
        return ((student - teacher)**2).mean() * self.loss_weight


def tiny(base: int = 4, aux: bool = False, dropout: float = 0.1) -> dict:
    model = seg_model(base, aux=aux)
    model['decode_head']['dropout_ratio'] = dropout
    if aux:
        model['auxiliary_head']['dropout_ratio'] = dropout
    return dict(model=model, scope='mmseg')


def cohort(n: int = 2, losses=None, dropout: float = 0.1, **kw) -> dict:
    names = 'abc'[:n]
    cfg = dict(
        type='CohortDistiller',
        members={
            m: tiny(4, aux=(i == 1), dropout=dropout)
            for i, m in enumerate(names)
        },
        taps={f'{m}_logits': f'{m}:decode_head.conv_seg'
              for m in names},
        losses=losses
        or dict(loss_dml=dict(type='HintonKD', tau=1.0, mutual=[f'{m}_logits' for m in names])),
        eval_member='a')
    cfg.update(kw)
    return cfg


def build(cfg: dict) -> CohortDistiller:
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg)


def optims(model, names=('a', 'b'), lr=0.01) -> OptimWrapperDict:
    cfg = {
        n: dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=lr, momentum=0.9))
        for n in names
    }
    return CohortOptimWrapperConstructor(cfg)(model)


def prepared(model, n=2, seed=0, dtype=torch.float32):
    data = model.data_preprocessor(batch(n, seed=seed), True)
    return data['inputs'].to(dtype), data['data_samples']


# ---------------------------------------------------------------------------------------------
# build-time errors: one sentence that says what to fix
# ---------------------------------------------------------------------------------------------
def test_build_errors_name_what_to_fix():
    with pytest.raises(KeyError, match=r"eval_member='c' is not a member; set it to one of: a, b"):
        build(cohort(eval_member='c'))
    bad = cohort()
    bad['taps']['b_logits'] = 'z:decode_head.conv_seg'
    with pytest.raises(
            KeyError,
            match=r"names member 'z', which does not exist; start the tap "
            r'with one of: a, b'):
        build(bad)
    with pytest.raises(KeyError, match=r"maps mutual='x_logits', which is not a tap"):
        build(cohort(losses=dict(loss_dml=dict(type='HintonKD', mutual=['a_logits', 'x_logits']))))
    with pytest.raises(KeyError, match=r"maps teacher='nope', which is not a tap"):
        build(
            cohort(losses=dict(loss_kd=dict(type='HintonKD', student='a_logits', teacher='nope'))))
    with pytest.raises(ValueError, match='either mutual=.* or student='):
        build(
            cohort(
                losses=dict(
                    loss_kd=dict(
                        type='HintonKD',
                        mutual=['a_logits', 'b_logits'],
                        student='a_logits',
                        teacher='b_logits'))))
    same = cohort()
    same['taps']['a_feat'] = 'a:backbone[3]'
    with pytest.raises(ValueError, match="belong to the same member 'a'"):
        build(
            dict(
                same,
                losses=dict(
                    loss_kd=dict(type='_TestNoDetachMSE', student='a_logits', teacher='a_feat'))))
    with pytest.raises(ValueError, match='trainable parameters, but the tap is only a'):
        build(
            cohort(
                losses=dict(loss_kd=dict(type='HintonKD', student='a_logits', teacher='b_logits')),
                connectors=dict(
                    b_logits=dict(type='ConvBNConnector', in_channels=11, out_channels=11))))
    with pytest.raises(ValueError, match=r"member name 'a.b' is not valid"):
        build(dict(cohort(), members={'a.b': tiny(), 'a': tiny()}))
    # the optimizer dict: one entry per member, no other entries
    model = build(cohort())
    sgd = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
    with pytest.raises(KeyError, match=r"no entry for member\(s\) \['b'\]; add b "):
        CohortOptimWrapperConstructor(dict(a=sgd))(model)
    with pytest.raises(KeyError, match=r"entries \['c'\] are not members"):
        CohortOptimWrapperConstructor(dict(a=sgd, b=sgd, c=sgd))(model)
    with pytest.raises(TypeError, match='one optimizer per member|its own optimizer'):
        model.train_step(batch(2), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))


def test_optimizer_per_member_owns_exactly_its_parameters():
    model = build(
        cohort(
            3,
            connectors=dict(
                a_logits=dict(type='ConvBNConnector', in_channels=11, out_channels=11))))
    ow = optims(model, 'abc')
    assert list(ow.keys()) == ['a', 'b', 'c']
    seen = set()
    for n in 'abc':
        ids = {id(p) for g in ow[n].optimizer.param_groups for p in g['params']}
        own = {id(p) for p in model.members[n].parameters()}
        if n == 'a':
            own |= {id(p) for p in model.connectors['a_logits'].parameters()}
        assert ids == own, n
        seen |= ids
    assert seen == {id(p) for p in model.parameters()}  # nothing trained twice or not at all


def test_member_checkpoint_initialises_it_survives_init_weights_and_must_match(tmp_path):
    with DefaultScope.overwrite_default_scope('mmseg'):
        ref = MODELS.build(seg_model(4, aux=True))
        other = MODELS.build(seg_model(8))
    good, bad = str(tmp_path / 'b.pth'), str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=ref.state_dict()), good)
    torch.save(dict(state_dict=other.state_dict()), bad)
    cfg = cohort()
    cfg['members']['b'] = dict(cfg['members']['b'], checkpoint=good)
    model = build(cfg)
    model.init_weights()  # the Runner calls it before training: the checkpoint must survive
    sd = model.members['b'].state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ref.state_dict().items())
    cfg['members']['b'] = dict(tiny(4, aux=True), checkpoint=bad)  # same names, other shapes
    with pytest.raises(ValueError, match=r"member 'b' checkpoint .* entries of another shape"):
        build(cfg)
    torch.save(dict(state_dict={'head.weight': torch.zeros(1)}), bad)  # another network
    with pytest.raises(ValueError, match=r"member 'b' checkpoint .* matches only 0 of"):
        build(cfg)


# ---------------------------------------------------------------------------------------------
# the DML objective, by hand
# ---------------------------------------------------------------------------------------------
def _logits(net, x):
    return net.decode_head(net.extract_feat(x))  # conv_seg output (eval: no dropout)


def test_mutual_loss_equals_mean_kl_over_the_other_members_by_hand():
    model = build(cohort(3)).double().eval()
    x, samples = prepared(model, dtype=torch.float64)
    losses = model.loss(x, samples)
    assert {'a.loss_dml', 'b.loss_dml', 'c.loss_dml', 'a.decode.loss_ce', 'b.aux.loss_ce'} <= \
        set(losses)
    with torch.no_grad():
        logp = {m: F.log_softmax(_logits(model.members[m], x), dim=1) for m in 'abc'}
    for i in 'abc':
        kls = []
        for j in 'abc':
            if j != i:  # KL(p_j || p_i), per pixel, averaged over N*H*W pixels
                kls.append((logp[j].exp() * (logp[j] - logp[i])).sum(1).mean())
        expected = sum(kls) / 2  # mean over the K-1 = 2 other members
        torch.testing.assert_close(losses[f'{i}.loss_dml'], expected, rtol=1e-10, atol=1e-12)
    # the member's task loss is its own loss(), unchanged
    own = model.members['b'].loss(x, samples)
    torch.testing.assert_close(losses['b.decode.loss_ce'], own['decode.loss_ce'])
    # two identical members: zero distillation loss
    twin = build(cohort(2)).double().eval()
    twin.members['b'].load_state_dict(twin.members['a'].state_dict(), strict=False)
    twin.members['b'].auxiliary_head = None
    with torch.no_grad():
        out = twin.loss(x, samples)
    assert float(out['a.loss_dml']) == pytest.approx(0, abs=1e-12)


def test_targets_are_detached_and_each_member_gets_its_own_gradient():
    """The loss does not detach its teacher input: the cohort must."""
    model = build(
        cohort(
            losses=dict(loss_mse=dict(type='_TestNoDetachMSE', mutual=['a_logits', 'b_logits'])),
            dropout=0.0)).double().eval()
    x, samples = prepared(model, dtype=torch.float64)
    losses = model.loss(x, samples)
    pa, pb = list(model.members['a'].parameters()), list(model.members['b'].parameters())
    grads = torch.autograd.grad(losses['a.loss_mse'], pb, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads)  # b is a constant for a's loss
    own_a = sum(v for k, v in losses.items() if k.startswith('a.') and 'loss' in k)
    g_own = torch.autograd.grad(own_a, pa, retain_graph=True)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    g_total = torch.autograd.grad(total, pa)
    for g1, g2 in zip(g_own, g_total):
        torch.testing.assert_close(g1, g2)  # the summed backward gives a exactly its own grad


def test_trainable_teacher_direction_and_both_members_update():
    model = build(
        cohort(losses=dict(loss_kd=dict(type='HintonKD', student='a_logits', teacher='b_logits'))))
    ow = optims(model)
    before = {n: copy.deepcopy(model.members[n].state_dict()) for n in 'ab'}
    model.train()
    log = model.train_step(batch(2), ow)
    assert 'a.loss_kd' in log and 'b.loss_kd' not in log  # only the student learns from b
    assert 'b.decode.loss_ce' in log  # the teacher keeps its task loss
    torch.testing.assert_close(log['a.loss'], log['a.decode.loss_ce'] + log['a.loss_kd'])
    torch.testing.assert_close(log['loss'], log['a.loss'] + log['b.loss'])
    for n in 'ab':  # both members were updated by their own optimizer
        w0 = before[n]['decode_head.conv_seg.weight']
        assert not torch.equal(model.members[n].state_dict()['decode_head.conv_seg.weight'], w0)
        assert ow[n].optimizer.state  # momentum buffers exist
    assert int(model.distill_iter) == 1


def test_switched_off_loss_is_not_computed_but_touches_learner_connectors():
    model = build(
        cohort(
            losses=dict(
                loss_kd=dict(
                    type='HintonKD',
                    student='a_logits',
                    teacher='b_logits',
                    schedule=dict(stop_iter=0))),
            connectors=dict(
                a_logits=dict(type='ConvBNConnector', in_channels=11, out_channels=11))))
    model.train()
    x, samples = prepared(model)
    losses = model.loss(x, samples)
    assert float(losses['a.loss_kd']) == 0
    losses['a.loss_kd'].backward()
    assert all(p.grad is not None for p in model.connectors['a_logits'].parameters())


def test_predict_and_tensor_run_eval_member_only():
    model = build(cohort()).eval()
    x, samples = prepared(model)
    calls = []
    handle = model.members['b'].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        out = model(x, samples, mode='tensor')
        ref_a = model.members['a'](x, samples, mode='tensor')
        preds = model(x, copy.deepcopy(samples), mode='predict')
    assert torch.equal(out, ref_a) and not calls and len(preds) == 2
    model.eval_member = 'b'
    with torch.no_grad():
        assert torch.equal(
            model(x, samples, mode='tensor'), model.members['b'](x, samples, mode='tensor'))
    handle.remove()
    assert model.student is model.members['b']  # what StudentCheckpointHook saves


def test_member_with_other_normalisation_gets_its_own_view():
    cfg = cohort()
    pre = dict(cfg['members']['b']['model']['data_preprocessor'])
    cfg['members']['b']['model']['data_preprocessor'] = dict(
        pre, mean=[0., 0., 0.], std=[1., 1., 1.], bgr_to_rgb=False)
    model = build(cfg).eval()
    x, samples = prepared(model)  # a's normalisation, RGB
    seen = {}
    model.members['b'].backbone.register_forward_pre_hook(lambda m, a: seen.setdefault('b', a[0]))
    with torch.no_grad():
        model.loss(x, samples)
    pa = model.data_preprocessor
    raw_bgr = (x * pa.std + pa.mean).flip(1)  # raw pixels in b's (BGR) channel order
    torch.testing.assert_close(seen['b'], raw_bgr)


def test_checkpoint_kinds_member_into_cohort_and_cohort_into_member():
    """What `mim test` / load_from do with the other kind of checkpoint (rtkd.compat)."""
    model = build(cohort())
    sd_a = {k: v + 1 for k, v in model.members['a'].state_dict().items()}
    sd, what = adapt_checkpoint_kind(model, sd_a)  # a plain member checkpoint, cohort config
    assert 'eval_member' in what and set(sd) == {f'members.a.{k}' for k in sd_a}
    full = model.state_dict()
    same, what = adapt_checkpoint_kind(model, full)
    assert same is full and what is None  # a cohort checkpoint in the cohort (resume): as is
    with DefaultScope.overwrite_default_scope('mmseg'):
        plain_b = MODELS.build(seg_model(4, aux=True))  # only member b has the aux head
    sd, what = adapt_checkpoint_kind(plain_b, full)
    assert "member 'b'" in what
    assert all(torch.equal(sd[k], full[f'members.b.{k}']) for k in plain_b.state_dict())


# ---------------------------------------------------------------------------------------------
# through the Runner: train/val/test, checkpoints, export, resume
# ---------------------------------------------------------------------------------------------
COHORT_OPTIM = """
optim_wrapper = dict(_delete_=True, constructor='CohortOptimWrapperConstructor',
    a=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
    b=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.02, momentum=0.9)))
model_wrapper_cfg = dict(type='DistillerDataParallel')
custom_hooks = [dict(type='StudentCheckpointHook', interval=2)]
"""


def runner_cohort(**kw) -> dict:
    cfg = cohort(**kw)
    cfg['losses']['loss_dml']['schedule'] = dict(warmup_iters=4)  # the counter must resume
    return cfg


def test_runner_train_test_checkpoint_and_member_export(tiny_camvid, tmp_path):
    work = str(tmp_path / 'work')
    cfg_file = write_config(
        str(tmp_path / 'dml.py'), tiny_camvid, work, runner_cohort(), extra=COHORT_OPTIM)
    runner = Runner.from_cfg(Config.fromfile(cfg_file))
    runner.train()
    scalars = set(runner.message_hub.log_scalars)
    assert {
        'train/a.decode.loss_ce', 'train/b.aux.loss_ce', 'train/a.loss_dml', 'train/b.loss_dml',
        'train/a.loss', 'train/b.loss'
    } <= scalars
    ckpt = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu')
    keys = list(ckpt['state_dict'])
    assert {k.split('.')[1] for k in keys if k.startswith('members.')} == {'a', 'b'}
    assert all(k.startswith('members.') or k == 'distill_iter' for k in keys)
    assert set(ckpt['optimizer']) == {'a', 'b'}  # every member's optimizer state
    assert ckpt['optimizer']['b']['param_groups'][0]['initial_lr'] == 0.02
    metrics_a = runner.test()  # measures eval_member a

    # export one member by name with the tool; it loads into that member's own config
    tool = runpy.run_path(osp.join(ROOT, 'tools/model_converters/extract_student.py'))
    out = {}
    for m in 'ab':
        out[m] = str(tmp_path / f'{m}.pth')
        tool['main']([osp.join(work, 'iter_2.pth'), out[m], '--member', m])
        sd = torch.load(out[m], map_location='cpu')['state_dict']
        ref = {
            k[len(f'members.{m}.'):]: v
            for k, v in ckpt['state_dict'].items() if k.startswith(f'members.{m}.')
        }
        assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in sd)
    with pytest.raises(
            KeyError, match=r"cohort checkpoint with members \['a', 'b'\]: name the "
            r'member'):
        extract_student(osp.join(work, 'iter_2.pth'), str(tmp_path / 'x.pth'))
    with pytest.raises(KeyError, match="member 'c' is not in the checkpoint; its members are: a"):
        extract_student(osp.join(work, 'iter_2.pth'), str(tmp_path / 'x.pth'), member='c')
    s_cfg = Config.fromfile(
        write_config(
            str(tmp_path / 'a_cfg.py'),
            tiny_camvid,
            str(tmp_path / 's'),
            seg_model(4),
            extra="default_scope = 'mmseg'\n"))
    s_cfg.load_from = out['a']
    assert Runner.from_cfg(s_cfg).test()['mIoU'] == pytest.approx(metrics_a['mIoU'])
    # the hook's student_latest.pth is the eval member
    hook_sd = torch.load(osp.join(work, 'student_latest.pth'), map_location='cpu')['state_dict']
    a_sd = torch.load(out['a'], map_location='cpu')['state_dict']
    assert all(torch.equal(hook_sd[k], a_sd[k]) for k in a_sd)

    # tools/test.py on the cohort config measures eval_member (b with --cfg-options)
    results = []
    original = Runner.test

    def record(self):
        results.append(original(self))
        return results[-1]

    b_cfg = Config.fromfile(
        write_config(
            str(tmp_path / 'b_cfg.py'),
            tiny_camvid,
            str(tmp_path / 'sb'),
            seg_model(4, aux=True),
            extra="default_scope = 'mmseg'\n"))
    b_cfg.load_from = out['b']
    metrics_b = Runner.from_cfg(b_cfg).test()
    argv = sys.argv
    try:
        Runner.test = record
        for extra in ([], ['--cfg-options', 'model.eval_member=b']):
            sys.argv = [
                'tools/test.py', cfg_file,
                osp.join(work, 'iter_2.pth'), '--work-dir',
                str(tmp_path / 't')
            ] + extra
            runpy.run_path(osp.join(ROOT, 'tools/test.py'), run_name='__main__')
    finally:
        Runner.test, sys.argv = original, argv
    assert results[0]['mIoU'] == pytest.approx(metrics_a['mIoU'])
    assert results[1]['mIoU'] == pytest.approx(metrics_b['mIoU'])

    # a cohort checkpoint given to a plain model whose architecture fits both members: refused
    plain = build(cohort()).members['a']
    with pytest.raises(ValueError, match='--member <name>'):
        adapt_checkpoint_kind(plain, ckpt['state_dict'])


def _members_state(model) -> dict:
    model = getattr(model, 'module', model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_continues_every_member_like_an_uninterrupted_run(tiny_camvid, tmp_path):
    """4 iterations in one go == 2 iterations, then --resume to 4 (weights, optimizer momenta,
    lr schedules and the distillation schedule counter of both members resumed)."""
    model = runner_cohort(dropout=0.0)  # no dropout: the resumed run's RNG differs
    extra = COHORT_OPTIM + "train_cfg = dict(max_iters=4, val_interval=10)\n" + \
        "param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=4, " \
        "by_epoch=False)]\n"
    full = Config.fromfile(
        write_config(
            str(tmp_path / 'full.py'),
            tiny_camvid,
            str(tmp_path / 'full'),
            model,
            max_iters=4,
            extra=extra))
    runner = Runner.from_cfg(full)
    runner.train()
    expected = _members_state(runner.model)

    work = str(tmp_path / 'split')
    first = Config.fromfile(
        write_config(
            str(tmp_path / 'first.py'), tiny_camvid, work, model, max_iters=4, extra=extra))
    first.train_cfg.max_iters = 2  # stop half-way (same lr schedule)
    Runner.from_cfg(first).train()
    second = Config.fromfile(
        write_config(
            str(tmp_path / 'second.py'), tiny_camvid, work, model, max_iters=4, extra=extra))
    second.resume = True
    runner = Runner.from_cfg(second)
    runner.train()
    assert runner.iter == 4 and int(runner.model.distill_iter) == 4
    got = _members_state(runner.model)
    assert got.keys() == expected.keys()
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-6, atol=1e-7, msg=k)
    assert any('members.b.' in k for k in got)


# ---------------------------------------------------------------------------------------------
# 2-process DDP (gloo, CPU), find_unused_parameters=False
# ---------------------------------------------------------------------------------------------
RANK_DUMP = """
import os
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class _DumpRankWeights(Hook):
    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()},
                   os.path.join(runner.work_dir, f"rank{os.environ.get('RANK', '0')}.pth"))
"""


@needs_torchrun
def test_ddp_two_process_cpu_keeps_members_in_sync(tiny_camvid, tmp_path):
    """Each rank sees other images; with gradients all-reduced through DDP every member ends
    identical on both ranks. DDP with find_unused_parameters=False stops at the second
    iteration if any parameter (of any member) missed its gradient in the first."""
    work = str(tmp_path / 'work')
    mod_dir = tmp_path / 'mods'
    mod_dir.mkdir()
    (mod_dir / 'rank_dump.py').write_text(RANK_DUMP)
    extra = COHORT_OPTIM.replace(
        "custom_hooks = [dict(type='StudentCheckpointHook', interval=2)]",
        "custom_hooks = [dict(type='StudentCheckpointHook', interval=2), "
        "dict(type='_DumpRankWeights')]")
    extra += ("model_wrapper_cfg = dict(type='DistillerDataParallel', "
              "find_unused_parameters=False)\n"
              "custom_imports = dict(imports=['rtkd', 'rank_dump'], allow_failed_imports=False)\n")
    cfg_file = write_config(
        str(tmp_path / 'ddp.py'), tiny_camvid, work, runner_cohort(), extra=extra)
    path = os.pathsep.join(p for p in (str(mod_dir), os.environ.get('PYTHONPATH')) if p)
    proc, _ = run_torchrun(cfg_file, env=dict(PYTHONPATH=path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(osp.join(work, 'rank0.pth'), map_location='cpu')
    r1 = torch.load(osp.join(work, 'rank1.pth'), map_location='cpu')
    for k in r0:
        if 'running_' in k or 'num_batches' in k:
            continue  # BN statistics are per rank (no SyncBN on CPU)
        torch.testing.assert_close(r0[k], r1[k], msg=k)
    text = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert 'a.loss_dml' in text and 'b.loss_dml' in text
    assert 'find_unused_parameters=False' in text
    assert osp.isfile(osp.join(work, 'iter_2.pth'))


# ---------------------------------------------------------------------------------------------
# the shipped recipes
# ---------------------------------------------------------------------------------------------
def _step_recipe(path: str):
    cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
    assert cfg.model_wrapper_cfg.type == 'DistillerDataParallel'
    assert isinstance(ow, OptimWrapperDict) and list(ow.keys()) == list(model.members)
    model.data_preprocessor.size = (64, 96)  # tiny crop instead of 240x320
    model.train()
    before = {
        n: next(model.members[n].decode_head.conv_seg.parameters()).detach().clone()
        for n in model.members
    }
    log = model.train_step(batch(2, 64, 96), ow)
    for n in model.members:
        assert not torch.equal(next(model.members[n].decode_head.conv_seg.parameters()), before[n])
    return model, log


def test_dml_recipe_builds_and_steps():
    for path in (DML_RECIPE, TT_RECIPE):  # the recipe naming scheme, method folder dml
        m = RECIPE_NAME.match(osp.basename(path))
        assert m and m['method'].split('-')[0] == 'dml', path
    model, log = _step_recipe(DML_RECIPE)
    assert [type(m.backbone).__name__ for m in model.members.values()] == ['RTFastSCNN'] * 2
    assert model.eval_member == 'a' and float(log['a.loss_dml']) > 0 and \
        float(log['b.loss_dml']) > 0 and torch.isfinite(log['loss'])


@pytest.mark.skipif(not osp.isfile(TEACHER_CKPT), reason='shared CamVid teacher not available')
def test_trainable_teacher_recipe_starts_from_the_teacher_and_steps():
    from mmengine.runner.checkpoint import _load_checkpoint
    cfg = Config.fromfile(TT_RECIPE)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    ref = _load_checkpoint(TEACHER_CKPT, map_location='cpu')['state_dict']
    t_sd = model.members['teacher'].state_dict()
    assert all(torch.equal(t_sd[k], ref[k]) for k in ref)  # initialised from the shared teacher
    model.init_weights()  # what the Runner does: the checkpoint must survive it
    assert torch.equal(model.members['teacher'].state_dict()['decode_head.conv_seg.weight'],
                       ref['decode_head.conv_seg.weight'])
    model, log = _step_recipe(TT_RECIPE)
    assert type(model.members['teacher'].backbone).__name__ == 'BiSeNetV2'
    assert type(model.members['student'].backbone).__name__ == 'RTFastSCNN'
    assert model.eval_member == 'student'
    assert 'student.loss_kd' in log and 'teacher.loss_kd' not in log
    assert float(log['teacher.decode.loss_ce']) > 0  # the teacher keeps its task loss
