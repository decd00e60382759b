"""DDP and resume equivalence of a distillation run: same recipe, same seed, same numbers.

    python tools/benchmarks/ddp_equivalence.py --iters 20 [--work-dir DIR] [--data-root DIR]

Runs one recipe twice on CPU and prints the largest differences:

* **1 process, batch 8** (``python tools/train.py``) vs **2 processes, batch 4 each**
  (``torchrun --nproc_per_node=2 tools/train.py --launcher pytorch``, gloo): per-iteration losses
  (the 1-process value vs the mean of the two ranks' values), the final student, connector and
  critic weights, the optimizer states; and, inside the 2-process run, rank 0 vs rank 1 (student,
  connectors, critic, frozen teacher, optimizer states). Exit status 1 when a difference is above
  the tolerances (:data:`CURVE_RTOL`, :data:`CURVE_ATOL`, :data:`STATE_ATOL`).

The recipe (:func:`write_recipe`): a tiny CamVid of 8 images at full size (48 x 64, no random
transform), ``InfiniteSampler(shuffle=False)``, so that every iteration's global batch holds the
same 8 samples in both runs (mmengine's samplers give rank ``r`` the indices ``r, r + 2, ...``:
rank 0 gets images 0, 2, 4, 6 and rank 1 gets 1, 3, 5, 7; the losses are means, so the order in
the batch does not matter). Student: a ResNetV1c-18 (base 4) FCN with **GroupNorm** instead of
BN (per-sample statistics: the same with 4 or 8 images per process; PyTorch's SyncBN does not
run on CPU and ``Runner`` reverts SyncBN to BN in a 1-process run, so GN is the only way to have
normalisation in the trainable part here), dropout 0, cross-entropy averaged over valid pixels
(every image has the same void rows, so each rank's denominator is the same). Teacher: the same
net at base 8 with BN (eval mode, frozen). Losses: CWD on logits (with a warm-up schedule),
CWD on a backbone feature through a 1x1 conv connector (``ConvBNConnector(norm=False)``), and
SKD's holistic (WGAN-GP) loss with its own critic (spectral norm) and optimizer (SGD lr 4e-4,
the official SKD critic optimizer: Adam would turn the rounding noise of near-zero gradients into
lr-sized steps, measured 2e-4 on a critic bias after 4 iterations); the student's stem is frozen
for the first quarter of the run (``freeze_student``). ``randomness.diff_rank_seed=True``,
so each rank initialises its own student and critic: only DDP's broadcast and the distiller's
critic broadcast make them equal (rank 0 draws what the 1-process run draws).

The critic's gradient penalty draws ``alpha`` with ``HolisticKD(alpha='sample')``: keyed on
(critic step, image file name), the same value for the same sample at the same step in any
process layout and after a resume. With the default ``alpha='global'`` (the official
``torch.rand``) each rank draws its own values and the critics drift apart (equally distributed,
not equal).

The resume comparison (N uninterrupted vs N/2, stop, ``--resume`` to N) lives in
``tests/test_distill/test_equivalence.py`` (bitwise equal with this recipe) and uses
:func:`write_recipe`, :func:`max_abs_diff` and :class:`EquivalenceRecorderHook` (``stop_at``) from
here. What mmengine cannot make exact on resume: the torch RNG is not in the checkpoint (dropout,
the default ``HolisticKD(alpha='global')`` penalty draw; measured 4e-4 / 1.7e-4 after 8 iterations);
the data stream is repeated (seeded sampler, replayed skipped batches, re-seeded workers) when
``num_workers`` and the world size do not change. A run stopped by a smaller ``max_iters`` instead
of an interruption resumes schedulers whose default ``end`` is the first launch's ``max_iters``
(mmengine fills it in when building them and restores it from the checkpoint).

Finding while testing the critic broadcast: mmengine's ``Runner._init_model_weights`` already
broadcasts the whole ``state_dict`` (critics included) from rank 0 after ``init_weights``, so
``Distiller._sync_discriminators`` only matters outside the Runner; with the Runner, removing it
changes nothing (checked: this comparison still passes).

This module is also imported by the runs it starts (``custom_imports``: it registers the loss and
:class:`EquivalenceRecorderHook`, which saves each rank's losses and final state).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
BASES = [
    osp.join(ROOT, 'configs/_base_', p)
    for p in ('datasets/camvid.py', 'default_runtime.py', 'schedules/schedule_poly.py')
]
DP = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=8)
FULL_PIPE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]


# ------------------------------------------------------------------------------------------
# registered parts (imported by the runs through custom_imports)
# ------------------------------------------------------------------------------------------
def _cpu(x: Any) -> Any:
    if torch.is_tensor(x):
        return x.detach().cpu().clone()
    if isinstance(x, dict):
        return {k: _cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_cpu(v) for v in x)
    return x


class StopTraining(RuntimeError):
    """Raised by :class:`EquivalenceRecorderHook` at ``stop_at`` (an interrupted run)."""


@HOOKS.register_module(name='EquivalenceRecorderHook', force=True)
class EquivalenceRecorderHook(Hook):
    """Save this rank's per-iteration log variables and its final state.

    Writes ``<work_dir>/equiv_rank<R>_from<I>.pth`` at the end of training (``I``: the iteration
    the launch started from, 0 unless resumed) with ``iters`` (list of iteration numbers),
    ``logs`` (list of ``{name: float}``), ``state`` (the model's ``state_dict``: student,
    connectors, critics, counters), ``teacher`` (the teacher's ``state_dict`` or None) and
    ``optim`` (the optimizer wrapper's ``state_dict``).

    Args:
        stop_at (int | None): after iteration ``stop_at`` (once ``CheckpointHook`` ran: this hook
            has the lowest priority) write the file and raise :class:`StopTraining`, i.e. stop
            like a killed job, with the config (``max_iters``, schedules) unchanged.
    """

    priority = 'LOWEST'

    def __init__(self, stop_at: Optional[int] = None) -> None:
        self.stop_at = stop_at

    def before_train(self, runner) -> None:
        self._start = runner.iter
        self._iters: List[int] = []
        self._logs: List[Dict[str, float]] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._iters.append(runner.iter + 1)
        self._logs.append({k: float(v) for k, v in (outputs or {}).items()})
        if self.stop_at is not None and runner.iter + 1 == self.stop_at:
            self.after_train(runner)
            raise StopTraining(f'stopped after iteration {self.stop_at}')

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        teacher = None
        if getattr(model, '_teacher', None):
            teacher = _cpu(model.teacher.state_dict())
        out = osp.join(runner.work_dir, f'equiv_rank{get_rank()}_from{self._start}.pth')
        torch.save(
            dict(
                iters=self._iters,
                logs=self._logs,
                state=_cpu(model.state_dict()),
                teacher=teacher,
                optim=_cpu(runner.optim_wrapper.state_dict())), out)


# ------------------------------------------------------------------------------------------
# recipe
# ------------------------------------------------------------------------------------------
def student_model(base: int = 4, norm: Optional[dict] = None, dropout: float = 0.0) -> dict:
    """A tiny mmseg EncoderDecoder (ResNetV1c-18 at ``base`` channels, FCN head, 11 classes).

    Args:
        base (int): stem / first-stage width.
        norm (dict | None): norm layer config; default ``GN`` with 2 groups.
        dropout (float): the head's dropout ratio.

    Returns:
        dict: model config.
    """
    norm = norm or dict(type='GN', num_groups=2, requires_grad=True)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=DP,
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            base_channels=base,
            stem_channels=base,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=norm,
            contract_dilation=True),
        decode_head=dict(
            type='FCNHead',
            in_channels=base * 8,
            in_index=3,
            channels=2 * base,
            num_convs=1,
            concat_input=False,
            num_classes=11,
            norm_cfg=norm,
            dropout_ratio=dropout,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def save_teacher(root: str) -> dict:
    """A BN teacher (base 8, random weights drawn under seed 0): its config file + checkpoint.

    Returns:
        dict: ``dict(config=..., checkpoint=...)`` for the distiller.
    """
    from mmengine.registry import DefaultScope
    os.makedirs(root, exist_ok=True)
    model = student_model(8, norm=dict(type='BN', requires_grad=True))
    cfg_path = osp.join(root, 'teacher.py')
    with open(cfg_path, 'w') as f:
        f.write(f"default_scope = 'mmseg'\nmodel = {model!r}\n")
    state = torch.get_rng_state()
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        t = MODELS.build(model)
    torch.set_rng_state(state)
    ckpt = osp.join(root, 'teacher.pth')
    torch.save(dict(state_dict=t.state_dict()), ckpt)
    return dict(config=cfg_path, checkpoint=ckpt)


def distiller(teacher: dict, iters: int, student: Optional[dict] = None) -> dict:
    """The distillation recipe compared here (see the module docstring)."""
    return dict(
        type='Distiller',
        student=dict(model=student or student_model(), scope='mmseg'),
        teacher=teacher,
        taps=dict(
            s_logits='student:decode_head.conv_seg',
            t_logits='teacher:decode_head.conv_seg',
            s_feat='student:backbone[3]',
            t_feat='teacher:backbone[3]'),
        connectors=dict(
            s_feat=dict(type='ConvBNConnector', in_channels=32, out_channels=64, norm=False)),
        losses=dict(
            loss_cwd=dict(
                type='ChannelWiseKD',
                tau=4.0,
                loss_weight=3.0,
                student='s_logits',
                teacher='t_logits',
                schedule=dict(warmup_iters=max(iters // 2, 1))),
            loss_cwd_feat=dict(
                type='ChannelWiseKD', tau=1.0, loss_weight=1.0, student='s_feat', teacher='t_feat'),
            # a sum over the batch (SKD's official normalisation): global under DDP
            loss_pi=dict(
                type='PixelWiseKD',
                reduction='sum_batch',
                loss_weight=0.1,
                student='s_logits',
                teacher='t_logits'),
            loss_hkd=dict(
                type='HolisticKD',
                alpha='sample',
                num_classes=11,
                num_convs=2,
                base_channels=8,
                loss_weight=0.1,
                student='s_logits',
                teacher='t_logits')),
        freeze_student=dict(modules=['backbone.stem'], iters=max(iters // 4, 1)))


def write_recipe(path: str,
                 data_root: str,
                 work_dir: str,
                 teacher: dict,
                 iters: int,
                 batch: int,
                 pipeline: Optional[list] = None,
                 shuffle: bool = False,
                 ckpt_interval: Optional[int] = None,
                 student: Optional[dict] = None,
                 extra: str = '') -> str:
    """Write the complete config (for ``tools/train.py``, torchrun or an in-process Runner).

    Args:
        path (str): config file to write.
        data_root (str): a CamVid folder (e.g. ``make_tiny_camvid`` of ``tests/helpers/data.py``,
            8 images).
        work_dir (str): the run's work dir.
        teacher (dict): from :func:`save_teacher`.
        iters (int): ``max_iters``; the student's poly schedule spans it.
        batch (int): batch size per process.
        pipeline (list | None): training pipeline (default: full images, nothing random).
        shuffle (bool): ``InfiniteSampler(shuffle=...)``.
        ckpt_interval (int | None): checkpoint interval (default ``iters``).
        student (dict | None): student model (default :func:`student_model`).
        extra (str): config text appended.

    Returns:
        str: ``path``.
    """
    model = distiller(teacher, iters, student)
    text = f"""
_base_ = {BASES!r}
custom_imports = dict(imports=['rtkd', 'ddp_equivalence'], allow_failed_imports=False)
work_dir = {work_dir!r}
train_dataloader = dict(batch_size={batch}, num_workers=0, persistent_workers=False,
                        sampler=dict(type='InfiniteSampler', shuffle={shuffle!r}),
                        dataset=dict(data_root={data_root!r}, pipeline={pipeline or FULL_PIPE!r}))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
train_cfg = dict(type='IterBasedTrainLoop', max_iters={iters}, val_interval=100000)
optim_wrapper = dict(
    _delete_=True, constructor='DistillOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)),
    discriminator=dict(type='OptimWrapper',
                       optimizer=dict(type='SGD', lr=4e-4, momentum=0.9, weight_decay=5e-4)))
param_scheduler = dict(
    _delete_=True,
    student=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end={iters},
                  by_epoch=False)],
    discriminator=[dict(type='ConstantLR', factor=1.0, by_epoch=False)])
default_hooks = dict(checkpoint=dict(interval={ckpt_interval or iters}, max_keep_ckpts=10),
                     logger=dict(interval=1), visualization=dict(draw=False))
custom_hooks = [dict(type='EquivalenceRecorderHook')]
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, diff_rank_seed=True)
model_wrapper_cfg = dict(type='DistillerDataParallel')
model = {model!r}
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return path


# ------------------------------------------------------------------------------------------
# comparison
# ------------------------------------------------------------------------------------------
def max_abs_diff(a: Any, b: Any, where: str = '') -> tuple:
    """Largest absolute difference between two nested structures of tensors / numbers.

    Args:
        a, b: dicts, lists, tuples, tensors, numbers (same structure and keys).
        where (str): prefix of the reported location.

    Returns:
        tuple[float, str]: the difference and where it is (``inf`` if the structures differ).
    """
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return float('inf'), f'{where}: keys differ {sorted(set(a) ^ set(b), key=str)[:5]}'
        best = (0.0, where)
        for k in a:
            best = max(
                best,
                max_abs_diff(a[k], b[k], f'{where}.{k}' if where else str(k)),
                key=lambda r: r[0])
        return best
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return float('inf'), f'{where}: lengths {len(a)} vs {len(b)}'
        best = (0.0, where)
        for i, (x, y) in enumerate(zip(a, b)):
            best = max(best, max_abs_diff(x, y, f'{where}[{i}]'), key=lambda r: r[0])
        return best
    if torch.is_tensor(a) and torch.is_tensor(b):
        if a.shape != b.shape:
            return float('inf'), f'{where}: shapes {tuple(a.shape)} vs {tuple(b.shape)}'
        if a.numel() == 0:
            return 0.0, where
        return float((a.double() - b.double()).abs().max()), where
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(float(a) - float(b)), where
    return (0.0, where) if a == b else (float('inf'), f'{where}: {a!r} vs {b!r}')


def load_rank(work_dir: str, rank: int, start: int = 0) -> dict:
    """What :class:`EquivalenceRecorderHook` saved for ``rank`` (launch from ``start``)."""
    return torch.load(
        osp.join(work_dir, f'equiv_rank{rank}_from{start}.pth'),
        map_location='cpu',
        weights_only=False)


def loss_curves(logs: List[Dict[str, float]]) -> Dict[str, List[float]]:
    """``{name: [value per iteration]}`` of the logged losses (names containing ``'loss'``)."""
    names = [k for k in logs[0] if 'loss' in k]
    return {k: [d[k] for d in logs] for k in names}


#: tolerances of the 1-process vs 2-process comparison (float32; the only difference between the
#: runs is the order of float additions in DDP's gradient all-reduce: measured over 20 iterations,
#: loss curves within 1.5e-6 absolute / 2.5e-7 relative, weights and optimizer states within 4e-6)
CURVE_RTOL, CURVE_ATOL, STATE_ATOL = 1e-5, 1e-6, 1e-5


def compare_ddp(single_dir: str, ddp_dir: str) -> dict:
    """Differences between a 1-process run and a 2-process run (see the module docstring).

    Returns:
        dict: ``curve`` (per loss: largest |single - mean of the ranks| over the iterations),
        ``curve_excess`` (per loss: largest ``|diff| / (CURVE_ATOL + CURVE_RTOL * |single|)``,
        <= 1 within tolerance), ``weights`` and ``optim`` (single vs rank 0), ``ranks_state``,
        ``ranks_teacher``, ``ranks_optim`` (rank 0 vs rank 1), each as ``(difference, where)``;
        ``iters``; ``curves`` (the loss curves: ``single``, ``rank0``, ``rank1``).
    """
    one, r0, r1 = load_rank(single_dir, 0), load_rank(ddp_dir, 0), load_rank(ddp_dir, 1)
    c1, c0, cr1 = (loss_curves(r['logs']) for r in (one, r0, r1))
    if set(c1) != set(c0) or len(one['logs']) != len(r0['logs']):
        raise ValueError(f'the runs logged different losses or lengths: {sorted(c1)} x '
                         f'{len(one["logs"])} vs {sorted(c0)} x {len(r0["logs"])}')
    curve, excess = {}, {}
    for k, vals in c1.items():
        diffs = [abs(v - (a + b) / 2) for v, a, b in zip(vals, c0[k], cr1[k])]
        curve[k] = max(diffs)
        excess[k] = max(d / (CURVE_ATOL + CURVE_RTOL * abs(v)) for d, v in zip(diffs, vals))
    return dict(
        iters=len(one['logs']),
        curve=curve,
        curve_excess=excess,
        weights=max_abs_diff(one['state'], r0['state']),
        optim=max_abs_diff(one['optim'], r0['optim']),
        ranks_state=max_abs_diff(r0['state'], r1['state']),
        ranks_teacher=max_abs_diff(r0['teacher'], r1['teacher']),
        ranks_optim=max_abs_diff(r0['optim'], r1['optim']),
        curves=dict(single=c1, rank0=c0, rank1=cr1))


# ------------------------------------------------------------------------------------------
# runs
# ------------------------------------------------------------------------------------------
def child_env() -> dict:
    """Environment of the runs: one OpenMP thread; this checkout's ``rtkd`` (not an installed
    copy: ``python tools/train.py`` puts ``tools/``, not the checkout, on ``sys.path``) and this
    folder importable."""
    path = os.pathsep.join(p for p in (ROOT, HERE, os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=path)


def run_single(cfg_file: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python tools/train.py CFG`` (one process)."""
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/train.py'), cfg_file],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout)


def run_ddp(cfg_file: str,
            nproc: int = 2,
            timeout: int = 600,
            extra_args: Optional[list] = None) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=N tools/train.py CFG --launcher pytorch`` on a free port."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return subprocess.run(
        [
            sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
            f'--master_port={port}',
            osp.join(ROOT, 'tools/train.py'), cfg_file, '--launcher', 'pytorch'
        ] + list(extra_args or []),
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout)


def report(res: dict) -> str:
    """Human-readable lines of :func:`compare_ddp`'s result."""
    lines = [f'iterations: {res["iters"]}']
    for k in res['curve']:
        lines.append(f'  {k:<22} max |1p - mean(2p)| = {res["curve"][k]:.3e}  '
                     f'({res["curve_excess"][k]:.2f} x tolerance)')
    for key in ('weights', 'optim', 'ranks_state', 'ranks_teacher', 'ranks_optim'):
        d, where = res[key]
        lines.append(f'  {key:<22} max abs diff = {d:.3e}  at {where}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--work-dir', default=None, help='default: a temporary folder')
    parser.add_argument(
        '--data-root',
        default=None,
        help='a CamVid-layout folder with 8 training images of one size '
        '(default: a tiny synthetic one made by tests/helpers/data.py)')
    args = parser.parse_args(argv)
    import tempfile
    work = args.work_dir or tempfile.mkdtemp(prefix='ddp_equiv_')
    data_root = args.data_root
    if data_root is None:
        import importlib.util  # the tests' tiny-CamVid maker, loaded by path (no sys.path edit)
        spec = importlib.util.spec_from_file_location('rtkd_test_helpers',
                                                      osp.join(ROOT, 'tests', 'helpers', 'data.py'))
        helpers = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(helpers)
        data_root = helpers.make_tiny_camvid(osp.join(work, 'camvid'), n_train=8)
    teacher = save_teacher(osp.join(work, 'teacher'))
    dirs = {}
    for name, batch, runner in (('single', 8, run_single), ('ddp', 4, run_ddp)):
        dirs[name] = osp.join(work, name)
        shutil.rmtree(dirs[name], ignore_errors=True)
        cfg = write_recipe(
            osp.join(work, f'{name}.py'), data_root, dirs[name], teacher, args.iters, batch)
        t0 = time.time()
        proc = runner(cfg)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep='\n')
            return 2
        print(f'{name}: {time.time() - t0:.1f} s')
    res = compare_ddp(dirs['single'], dirs['ddp'])
    print(report(res))
    worst = max(res['curve'], key=lambda k: res['curve_excess'][k])
    worst_state = max(res[k][0]
                      for k in ('weights', 'optim', 'ranks_state', 'ranks_teacher', 'ranks_optim'))
    print(f'largest loss-curve difference: {res["curve"][worst]:.3e} ({worst}; tolerance '
          f'{CURVE_ATOL:g} + {CURVE_RTOL:g} x |loss|, {res["curve_excess"][worst]:.2f} x it)')
    print(f'largest weight / optimizer-state difference: {worst_state:.3e} '
          f'(tolerance {STATE_ATOL:g})')
    ok = res['curve_excess'][worst] <= 1 and worst_state <= STATE_ATOL
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
