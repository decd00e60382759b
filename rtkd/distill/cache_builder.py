"""Build and check teacher-output caches (the code behind ``tools/distill/cache_teacher.py``).

See :mod:`rtkd.distill.teacher_cache` for what a cache holds and how the distiller reads it.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from torch import Tensor

from ..version import __version__
from .losses.pixel_wise_kd import pixel_divergence
from .teacher import teacher_identity
from .teacher_cache import (CACHE_FORMAT, MANIFEST, PIPELINE_SCALE, TeacherCache, TeacherCacheError,
                            check_pipeline_replayable, encode_taps, entry_key, flatten_taps,
                            input_fingerprint, read_manifest, save_arrays, scale_tag, tap_parts,
                            text_digest, write_manifest)

_IDENTITY_KEYS = ('mode', 'teacher_config', 'teacher_checkpoint_sha256', 'taps_text', 'dataset',
                  'scales', 'flip', 'topk', 'dtype', 'pipeline', 'seed', 'batch_size', 'world_size')


def _dist_info():
    from mmengine.dist import get_dist_info
    return get_dist_info()


def _barrier() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def live_recipe(cfg: Config) -> Config:
    """The recipe with its teacher cache removed (the teacher is built and run)."""
    cfg = copy.deepcopy(cfg)
    if cfg.model.get('type') != 'Distiller':
        raise ValueError(f"the recipe's model is a {cfg.model.get('type')!r}, not a Distiller; "
                         'give a distillation recipe.')
    teacher = cfg.model.teacher
    if isinstance(teacher, dict):
        teacher.pop('cache', None)
    return cfg


def build_live_distiller(cfg: Config):
    """Build the recipe's Distiller with a live teacher, in eval mode."""
    from mmengine.registry import MODELS

    import rtkd  # noqa: F401  (registers the Distiller)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        model = MODELS.build(live_recipe(cfg).model)
    return model.eval()


def _train_dataset_cfg(cfg: Config) -> dict:
    ds = copy.deepcopy(cfg.train_dataloader.dataset)
    if 'pipeline' not in ds:
        raise TeacherCacheError('the training dataset has no pipeline (wrapped datasets such as '
                                'ConcatDataset are not supported by the geometric cache yet); '
                                'build an exact cache (--exact).')
    return ds


def recipe_identity(cfg: Config,
                    model,
                    mode: str,
                    scales=None,
                    flip=False,
                    topk=None,
                    iters=None,
                    dtype: str = 'float16') -> dict:
    """The manifest fields that tie a cache to a recipe.

    Args:
        cfg (Config): the recipe.
        model (Distiller): the recipe's live distiller (for its teacher taps).
        mode (str): ``'geometric'`` or ``'exact'``.

    Returns:
        dict: manifest fields (see :func:`build_geometric` / :func:`build_exact`).
    """
    teacher = dict(live_recipe(cfg).model.teacher)
    ident = teacher_identity(teacher)
    taps = {sp.name: sp.text for sp in model._teacher_specs}
    pipeline = [dict(t) for t in cfg.train_dataloader.dataset.get('pipeline', [])]
    out = dict(
        format=CACHE_FORMAT,
        mode=mode,
        rtkd_version=__version__,
        teacher_config=ident['teacher_config'],
        teacher_config_path=str(teacher.get('config', 'model dict')),
        teacher_checkpoint=ident['teacher_checkpoint'],
        teacher_checkpoint_sha256=ident['teacher_checkpoint_sha256'],
        taps_text=taps,
        pipeline=text_digest(pipeline),
        pipeline_text=repr(pipeline),
        topk=topk,
        dtype=dtype)
    if mode == 'geometric':
        out.update(scales=_scales(scales), flip=bool(flip))
    else:
        _, world = _dist_info()
        out.update(
            seed=cfg.get('randomness', {}).get('seed'),
            batch_size=int(cfg.train_dataloader.batch_size),
            world_size=int(world),
            iters=int(iters))
    return out


def _scales(scales) -> list:
    """``[float, ...]`` or ``['pipeline']`` (the training pipeline's own resize)."""
    scales = list(scales)
    if PIPELINE_SCALE in scales:
        if len(scales) != 1:
            raise TeacherCacheError(f"geometric cache scales: {PIPELINE_SCALE!r} (the training "
                                    'pipeline\'s own resize) cannot be mixed with factors; give '
                                    f'--scales {PIPELINE_SCALE} or factors only.')
        return [PIPELINE_SCALE]
    try:
        return [float(s) for s in scales]
    except (TypeError, ValueError):
        raise TeacherCacheError(f'geometric cache scales must be resize factors or '
                                f'{PIPELINE_SCALE!r}, got {scales!r}.') from None


def _pipeline_resize(pipeline: Sequence[dict]) -> List[dict]:
    """The training pipeline's resize for ``scales=['pipeline']``: deterministic only."""
    kinds = [t.get('type') for t in pipeline]
    random = [k for k in kinds if k in ('RandomResize', 'RandomChoiceResize')]
    if random:
        raise TeacherCacheError(f'--scales {PIPELINE_SCALE} caches each image at the training '
                                f"pipeline's own resize, which must be deterministic; the "
                                f'pipeline has {", ".join(random)}: give resize factors '
                                '(--scales 0.5 1 1.5 2) instead.')
    resize = [dict(t) for t in pipeline if t.get('type') == 'Resize']
    if not resize:
        raise TeacherCacheError(f'--scales {PIPELINE_SCALE}: the training pipeline has no Resize; '
                                'give resize factors (--scales 1.0) instead.')
    return resize


def _prepare_out(out: str, identity: dict, overwrite: bool) -> Optional[dict]:
    """Check an existing cache folder (resume) or refuse one made by another recipe."""
    if not osp.isfile(osp.join(out, MANIFEST)):
        return None
    old = read_manifest(out)
    diff = [k for k in _IDENTITY_KEYS if k != 'iters' and old.get(k) != identity.get(k)]
    if diff and not overwrite:
        k = diff[0]
        raise TeacherCacheError(
            f'{osp.abspath(out)!r} holds a teacher cache made with another '
            f'{k.replace("_", " ")} (cache: '
            f'{str(old.get(k))[:80]!r}, now: {str(identity.get(k))[:80]!r}); use another --out, '
            'or --overwrite to replace it.')
    return None if diff else old


def _teacher_inputs(model, batch: dict) -> dict:
    return model.data_preprocessor(batch, False)


BACKENDS = ('torch', 'onnxruntime')


def teacher_runner(model, backend: str = 'torch', onnx_tol: Optional[float] = None):
    """``run(inputs, data_samples) -> {tap: Tensor}``: the teacher taps of a batch.

    Args:
        model (Distiller): the recipe's distiller with a live teacher.
        backend (str): ``'torch'`` (``model._run_teacher``) or ``'onnxruntime'`` (the teacher
            cut at its taps, exported to ONNX and run by ONNX Runtime's CPU provider, checked
            against PyTorch on the first batch of every input shape; see
            :mod:`rtkd.distill.onnx_teacher`).
        onnx_tol (float | None): tolerance of that check (None: ``ONNX_TOL``).

    Returns:
        callable: the runner (an :class:`OnnxTeacherRunner` for onnxruntime).
    """
    if backend not in BACKENDS:
        raise ValueError(f'teacher-cache backend must be one of {BACKENDS}, got {backend!r}.')
    if backend == 'torch':
        return model._run_teacher
    from .onnx_teacher import ONNX_TOL, OnnxTeacherRunner, check_onnxruntime
    check_onnxruntime()
    return OnnxTeacherRunner(model, tol=ONNX_TOL if onnx_tol is None else onnx_tol)


def _backend_fields(run, backend: str, old: Optional[dict]) -> dict:
    """Manifest ``backend`` / ``backend_info``; a resumed build notes both backends."""
    info = run.info() if hasattr(run, 'info') else dict(torch=torch.__version__)
    if old is not None and old.get('backend', 'torch') != backend:
        return dict(
            backend=f"{old.get('backend', 'torch')}+{backend}",
            backend_info=dict(info, resumed_from=old.get('backend_info')))
    return dict(backend=backend, backend_info=info)


def _probe_shapes(model, size) -> Dict[str, list]:
    """The teacher taps' sizes for a training batch of ``size`` (h, w) (zeros input)."""
    x = torch.zeros(1, 3, int(size[0]), int(size[1]))
    rec = flatten_taps(model._run_teacher(x, None))
    return {k: list(v.shape[-2:]) for k, v in rec.items()}


def build_geometric(cfg: Config,
                    out: str,
                    scales: Sequence[float] = (1.0, ),
                    flip: bool = False,
                    topk: Optional[int] = None,
                    batch_size: int = 4,
                    overwrite: bool = False,
                    dtype: str = 'float16',
                    backend: str = 'torch',
                    onnx_tol: Optional[float] = None) -> dict:
    """Run the teacher over the recipe's training images and store its taps (geometric mode).

    Every image is loaded with the training pipeline's loading transforms, resized by each of
    ``scales`` (keep ratio, mmcv's ``Resize(scale_factor=s)``), mirrored too when ``flip``,
    preprocessed like a training batch (without padding) and put through the teacher (eval,
    ``no_grad``, cut short after its taps). Under ``torchrun`` each rank writes every
    ``world``-th image; rank 0 writes the manifest when all ranks are done.

    Args:
        cfg (Config): the distillation recipe.
        out (str): cache folder (created; an unfinished build there is resumed).
        scales (Sequence[float]): resize factors of the original image.
        flip (bool): also cache the mirrored images.
        topk (int | None): store only the top-k channels of each tap (logits) plus a rest value.
        batch_size (int): images per teacher forward (same-size images only).
        dtype (str): ``'float16'`` or ``'float32'``.
        overwrite (bool): replace a cache made by another recipe.
        backend (str): engine of the teacher forward, ``'torch'`` or ``'onnxruntime'``
            (see :func:`teacher_runner`); recorded in the manifest (``backend``,
            ``backend_info``), not part of the cache's identity: a recipe reads the cache the
            same way whichever engine built it.
        onnx_tol (float | None): tolerance of the onnxruntime export check.

    Returns:
        dict: the manifest.
    """
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS
    from mmengine.utils import ProgressBar
    t0 = time.time()
    rank, world = _dist_info()
    check_pipeline_replayable(cfg.train_dataloader.dataset.get('pipeline', []))
    scales = _scales(scales)
    resize = _pipeline_resize(cfg.train_dataloader.dataset.get('pipeline', [])) \
        if scales == [PIPELINE_SCALE] else None
    model = build_live_distiller(cfg)
    run = teacher_runner(model, backend, onnx_tol)
    ds_cfg = _train_dataset_cfg(cfg)
    loading = [
        dict(t) for t in ds_cfg['pipeline']
        if str(t.get('type', '')).startswith('Load') and t.get('type') != 'LoadAnnotations'
    ]
    scope = cfg.get('default_scope', 'mmseg')
    with DefaultScope.overwrite_default_scope(scope):
        base = DATASETS.build(dict(ds_cfg, pipeline=[]))
    prefix = base.data_prefix.get('img_path') or base.data_prefix.get('img')  # mmseg / mmdet
    img_dir = osp.abspath(prefix or base.data_root or '')
    files = [
        osp.relpath(osp.abspath(base.get_data_info(i)['img_path']), img_dir)
        for i in range(len(base))
    ]
    if not files:
        raise TeacherCacheError(f'the training dataset under {img_dir!r} is empty; check the '
                                "recipe's train_dataloader.dataset.")
    identity = recipe_identity(cfg, model, 'geometric', scales, flip, topk, dtype=dtype)
    identity['dataset'] = dict(type=ds_cfg.get('type'), n=len(files), files=text_digest(files))
    old = _prepare_out(out, identity, overwrite) if rank == 0 else None
    _barrier()
    manifest = dict(
        identity,
        img_dir=img_dir,
        files=files,
        status='building',
        total=len(files) * len(scales) * (2 if flip else 1))
    if rank == 0:
        os.makedirs(osp.join(out, 'entries'), exist_ok=True)
        if old is None:
            write_manifest(out, manifest)
    _barrier()

    variants = [(s, f) for s in scales for f in ((False, True) if flip else (False, ))]
    todo = []
    for i, rel in enumerate(files):
        if i % world != rank:
            continue
        for s, f in variants:
            path = osp.join(out, 'entries', f'{entry_key(rel)}@{scale_tag(s, f)}.npz')
            if not osp.isfile(path):
                todo.append((i, s, f, path))
    print_log(
        f'[cache] rank {rank}: {len(todo)} entries to compute '
        f'({len(files)} images x {len(variants)} variants, {world} process(es))',
        logger='current')
    taps_meta: Dict[str, dict] = {}
    pipelines = {}
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.dataset import Compose
        pack = 'PackDetInputs' if scope == 'mmdet' else 'PackSegInputs'
        for s, f in variants:
            pipe = loading + (
                resize
                if s == PIPELINE_SCALE else [dict(type='Resize', scale_factor=s, keep_ratio=True)])
            if f:
                pipe.append(dict(type='RandomFlip', prob=1.0, direction='horizontal'))
            pipe.append(dict(type=pack))
            pipelines[(s, f)] = Compose(pipe)
        bar = ProgressBar(len(todo)) if todo and rank == 0 else None
        pending: List[tuple] = []

        def flush():
            if not pending:
                return
            batch = pseudo_collate([p[1] for p in pending])
            data = _teacher_inputs(model, batch)
            rec = run(data['inputs'], data['data_samples'])
            if not taps_meta:
                taps_meta.update(_tap_facts(rec, data['inputs']))
            for k, (path, _, meta) in enumerate(pending):
                arrays = {
                    '__img_shape': np.array(meta['img_shape'][:2], np.int64),
                    '__scale_factor': np.array(meta['scale_factor'][:2], np.float64)
                }
                arrays.update(
                    encode_taps({
                        n: v[k]
                        for n, v in flatten_taps(rec).items()
                    }, topk, dtype))
                save_arrays(path, arrays)
                if bar is not None:
                    bar.update()
            pending.clear()

        for i, s, f, path in todo:
            info = copy.deepcopy(base.get_data_info(i))
            sample = pipelines[(s, f)](info)
            if pending and (pending[0][1]['inputs'].shape != sample['inputs'].shape
                            or len(pending) >= batch_size):
                flush()
            pending.append((path, sample, sample['data_samples'].metainfo))
        flush()
    _barrier()
    if rank == 0:
        if not taps_meta:  # everything was on disk: one forward gives the tap facts
            with DefaultScope.overwrite_default_scope(scope):
                info = copy.deepcopy(base.get_data_info(0))
                data = _teacher_inputs(model, pseudo_collate([pipelines[variants[0]](info)]))
            taps_meta = _tap_facts(
                model._run_teacher(data['inputs'], data['data_samples']), data['inputs'])
        size = getattr(model.data_preprocessor, 'size', None)
        probe = _probe_shapes(model, size) if size else {}
        for name, meta in taps_meta.items():
            meta['text'] = identity['taps_text'][name]
            for key, part in tap_parts(taps_meta, name) if size else ():
                part['probe'] = {f'{size[0]}x{size[1]}': probe[key]}
        manifest.update(_backend_fields(run, backend, old))
        done = len([n for n in os.listdir(osp.join(out, 'entries')) if n.endswith('.npz')])
        _finish(out, manifest, taps_meta, done, 'entries', t0)
    _barrier()
    if hasattr(run, 'close'):
        run.close()
    return manifest


def _tap_facts(rec: Dict[str, Tensor], inputs: Tensor, texts: Optional[dict] = None) -> dict:
    """Manifest facts of each recorded teacher tap: channels and stride w.r.t. the input
    (``parts``, one such dict per element, for a tuple tap)."""
    h, w = inputs.shape[-2:]

    def one(v):
        return dict(channels=int(v.shape[1]), stride=[h / v.shape[-2], w / v.shape[-1]])

    facts = {
        n: dict(parts=[one(p) for p in v]) if isinstance(v, (tuple, list)) else one(v)
        for n, v in rec.items()
    }
    for n in facts if texts else ():
        facts[n]['text'] = texts[n]
    return facts


def _finish(out: str, manifest: dict, taps_meta: dict, done: int, unit: str, t0: float) -> None:
    """Write the final manifest (complete when every entry is on disk) and report."""
    manifest.update(
        taps=taps_meta,
        done=done,
        status='complete' if done >= manifest['total'] else 'building',
        size_mb=_folder_mb(out),
        build_s=round(time.time() - t0, 1))
    write_manifest(out, manifest)
    print_log(
        f"[cache] {manifest['status']}: {done}/{manifest['total']} {unit}, "
        f"{manifest['size_mb']:.1f} MB in {osp.abspath(out)}, {time.time() - t0:.1f} s",
        logger='current')


def _folder_mb(folder: str) -> float:
    total = 0
    for root, _, names in os.walk(folder):
        total += sum(osp.getsize(osp.join(root, n)) for n in names)
    return total / 2**20


def training_stream(cfg: Config, work_dir: str):
    """(runner, model, loader) that replay the training batches of ``cfg`` exactly.

    The Runner is built from the recipe (live teacher) so that the seed, the sampler and the
    worker seeding are the ones ``tools/train.py`` / ``mim train`` use.
    """
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner
    cfg = live_recipe(cfg)
    if cfg.get('randomness', {}).get('seed') is None:
        raise TeacherCacheError('an exact teacher cache needs a fixed seed: set '
                                'randomness=dict(seed=N) in the recipe (or --cfg-options '
                                'randomness.seed=N) and train with the same seed.')
    cfg.work_dir = work_dir
    runner = Runner.from_cfg(cfg)
    loader = runner.build_dataloader(
        cfg.train_dataloader,
        seed=runner.seed,
        diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed', False))
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return runner, model.eval(), loader


def build_exact(cfg: Config,
                out: str,
                iters: int,
                topk: Optional[int] = None,
                overwrite: bool = False,
                dtype: str = 'float16',
                backend: str = 'torch',
                onnx_tol: Optional[float] = None) -> dict:
    """Store the teacher taps of the first ``iters`` training batches (exact mode).

    Args:
        cfg (Config): the recipe (with a fixed ``randomness.seed``).
        out (str): cache folder.
        iters (int): number of training iterations to cover (>= the run's ``max_iters``).
        topk (int | None): see :func:`build_geometric`.
        overwrite (bool): replace a cache made by another recipe.
        dtype (str): ``'float16'`` or ``'float32'`` (targets bit-equal to the live teacher;
            with ``backend='onnxruntime'``: equal to float rounding).
        backend (str), onnx_tol (float | None): see :func:`build_geometric`.

    Returns:
        dict: the manifest.
    """
    from mmengine.utils import ProgressBar
    t0 = time.time()
    _, model, loader = training_stream(cfg, osp.join(out, '.runner'))
    run = teacher_runner(model, backend, onnx_tol)
    stream = iter(loader)
    rank, world = _dist_info()
    identity = recipe_identity(cfg, model, 'exact', topk=topk, iters=iters, dtype=dtype)
    identity['dataset'] = dict(type=cfg.train_dataloader.dataset.get('type'), n=len(loader.dataset))
    old = _prepare_out(out, identity, overwrite) if rank == 0 else None
    if old is not None and old.get('iters', 0) < iters:
        old = None
    _barrier()
    folder = osp.join(out, 'exact', f'rank{rank}')
    os.makedirs(folder, exist_ok=True)
    manifest = dict(identity, status='building', total=iters * world)
    if rank == 0:
        write_manifest(out, manifest)
    taps_meta: Dict[str, dict] = {}
    bar = ProgressBar(iters) if rank == 0 else None
    for it in range(iters):
        batch = next(stream)
        path = osp.join(folder, f'iter_{it:07d}.npz')
        if osp.isfile(path) and taps_meta:
            if bar is not None:
                bar.update()
            continue
        with torch.no_grad():  # (an entry already on disk still gives the tap facts once)
            data = model.data_preprocessor(batch, True)
            inputs, samples = data['inputs'], data['data_samples']
            rec = run(inputs, samples)
            if not osp.isfile(path):
                arrays = {
                    '__fingerprint': input_fingerprint(inputs).numpy(),
                    '__img_path': np.array([str(s.metainfo.get('img_path', '')) for s in samples])
                }
                arrays.update(encode_taps(flatten_taps(rec), topk, dtype))
                save_arrays(path, arrays)
        if not taps_meta:
            taps_meta = _tap_facts(rec, inputs, identity['taps_text'])
        if bar is not None:
            bar.update()
    _barrier()
    if rank == 0:
        done = sum(
            len([n for n in os.listdir(osp.join(out, 'exact', d)) if n.endswith('.npz')])
            for d in os.listdir(osp.join(out, 'exact')))
        manifest.update(_backend_fields(run, backend, old))
        _finish(out, manifest, taps_meta, done, 'iterations x ranks', t0)
    _barrier()
    if hasattr(run, 'close'):
        run.close()
    return manifest


def _valid_mask(samples, batch_hw, map_hw) -> Tensor:
    """N x h x w: tap cells inside each sample's image (not the batch padding)."""
    h, w = map_hw
    mask = torch.zeros(len(samples), h, w, dtype=torch.bool)
    for i, s in enumerate(samples):
        ih, iw = s.metainfo['img_shape'][:2]
        mask[i, :max(1, int(ih * h // batch_hw[0])), :max(1, int(iw * w // batch_hw[1]))] = True
    return mask


def check_cache(cfg: Config, folder: str, batches: int = 4) -> Dict[str, dict]:
    """Compare cached targets with a live teacher forward on the same augmented batches.

    Geometric mode: ``batches`` batches of the recipe's training loader (seed of the recipe,
    else 0); exact mode: the first ``batches`` iterations of the training stream.

    Metrics are taken over the cells of each sample's image, not the batch padding (the live
    teacher's response to padding cannot be cached; ``argmax_agreement_all`` includes it).

    Returns:
        dict: tap -> ``argmax_agreement`` (%), ``argmax_agreement_all`` (%), ``mean_kl``
        (channel softmax, nats per pixel), ``rel_l2`` (|cached - live| / |live|), ``max_abs``.
    """
    from mmengine.runner import Runner
    manifest = read_manifest(folder)
    if manifest['mode'] == 'exact':
        _, model, loader = training_stream(cfg, osp.join(folder, '.runner-check'))
        stream = iter(loader)
    else:
        model = build_live_distiller(cfg)
        seed = cfg.get('randomness', {}).get('seed') or 0
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
            stream = iter(Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=seed))
    names = [sp.name for sp in model._teacher_specs]
    cache = TeacherCache(folder, dict(taps={sp.name: sp.text for sp in model._teacher_specs}))
    stored = [k for n in names for k, _ in tap_parts(cache.taps, n)]  # n#i for tuple taps
    acc: Dict[str, dict] = {
        n: dict(agree=0.0, agree_all=0.0, kl=0.0, num=0.0, den=0.0, max_abs=0.0, n=0)
        for n in stored
    }
    from mmengine.dist import get_rank
    for it in range(batches):
        batch = next(stream)
        with torch.no_grad():
            data = model.data_preprocessor(batch, True)
            inputs, samples = data['inputs'], data['data_samples']
            live = flatten_taps(model._run_teacher(inputs, samples))
            if cache.mode == 'exact':
                cached = cache.exact(names, it, get_rank(), inputs, samples)
            else:
                cached = cache.geometric(names, samples, tuple(inputs.shape[-2:]), inputs.device)
            cached = flatten_taps(cached)
        for n in stored:
            lv, cv = live[n].float(), cached[n].float()
            valid = _valid_mask(samples, tuple(inputs.shape[-2:]), lv.shape[-2:]) \
                if lv.dim() == 4 else torch.ones(lv.shape[0], 1, 1, dtype=torch.bool)
            a = acc[n]
            if lv.dim() == 4 and lv.shape[1] > 1:
                same = (lv.argmax(1) == cv.argmax(1)).float()
                a['agree'] += float((same * valid).sum() / valid.sum())
                a['agree_all'] += float(same.mean())
                kl = pixel_divergence(cv.float(), lv.float())  # KL(live || cached)
                a['kl'] += float((kl * valid).sum() / valid.sum())
            m = valid.unsqueeze(1).float() if lv.dim() == 4 else 1.0
            a['num'] += float(((cv - lv) * m).pow(2).sum())
            a['den'] += float((lv * m).pow(2).sum())
            a['max_abs'] = max(a['max_abs'], float(((cv - lv) * m).abs().max()))
            a['n'] += 1
    res = {}
    for n, a in acc.items():
        k = max(a['n'], 1)
        res[n] = dict(
            argmax_agreement=100.0 * a['agree'] / k,
            argmax_agreement_all=100.0 * a['agree_all'] / k,
            mean_kl=a['kl'] / k,
            rel_l2=(a['num'] / max(a['den'], 1e-12))**0.5,
            max_abs=a['max_abs'],
            batches=a['n'])
    return res


__all__ = [
    'build_geometric', 'build_exact', 'check_cache', 'recipe_identity', 'live_recipe',
    'build_live_distiller', 'teacher_runner', 'BACKENDS'
]
