"""Teacher-output cache: distil from stored teacher targets instead of a live teacher.

A cache is a folder written once by ``tools/distill/cache_teacher.py RECIPE --out DIR`` and named
in the recipe with one line, ``teacher=dict(config=..., checkpoint=..., cache=dict(dir=DIR))``.
The distiller then does not build the teacher: each batch's teacher taps are read from ``DIR``.

Two modes (``manifest.json`` says which):

* **geometric** (default): the teacher runs once per training *image* (eval, ``no_grad``) on the
  whole image resized by each of ``scales`` (and mirrored with ``flip``), and every teacher tap
  is stored at its native resolution. At training time the stored map of the cached scale nearest
  to the sample's resize factor (the mirrored one for a flipped sample) is put through the
  sample's own resize, crop box and flip (recorded in its meta by ``RecordedRandomCrop`` /
  ``RandomFlip`` / ``Resize``) with one bilinear ``grid_sample``, so it lines up with the
  student's tap pixel for pixel. ``scales=['pipeline']`` caches every image at the training
  pipeline's own deterministic ``Resize`` instead (mmdet's ``Resize(scale=(1333, 800),
  keep_ratio=True)``: one factor per image), so for a pipeline of that resize and a flip the
  replay is the identity (up to the live teacher's response to batch padding). Photometric
  augmentation (``PhotoMetricDistortion``) is *not* replayed: the cached teacher saw the
  undistorted image. For a teacher that commutes with resize/crop/flip (e.g. a 1x1 conv) the
  replay equals the live teacher exactly.
* **exact**: the training stream is deterministic for a fixed seed (sampler order and
  augmentation, mmengine seeds the workers), so the teacher taps of exactly the batches the
  student will see, ``--exact --iters N``, are stored by iteration (and rank) and looked up by
  the distiller's iteration counter. A per-sample fingerprint of the input (mean, std, and the
  means of two halves of the preprocessed image) is stored with them and checked on every
  lookup, so a stream that differs (other seed, batch size, pipeline, world size) stops with an
  error instead of training on wrong targets. Targets equal the live teacher's to fp16 precision.

Taps whose value is a tuple of maps (``'teacher:neck'``: the FPN levels) are stored level by level
(``name#i``) and read back as a tuple.

Storage: fp16 (``--dtype float32`` for bit-equal targets); logits may be stored as their top-k
classes (``topk=k``) plus one value per pixel for the other classes,
``logsumexp(rest) - log(C - k)``, which keeps the softmax probability of the top-k classes exact
and spreads the rest evenly. Every file is written atomically (temporary
file + ``os.replace``); an interrupted build resumes without recomputing what is on disk.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rtkd.utils import atomic_write_bytes

MANIFEST = 'manifest.json'
CACHE_FORMAT = 1
MODES = ('geometric', 'exact')
#: training-pipeline transforms the geometric mode replays, and those it may ignore
GEOMETRIC_TRANSFORMS = ('Resize', 'RandomResize', 'RandomChoiceResize', 'RecordedRandomCrop',
                        'RandomFlip')
IGNORED_TRANSFORMS = ('LoadImageFromFile', 'LoadAnnotations', 'PhotoMetricDistortion',
                      'PackSegInputs', 'CheckSegMapSize', 'LoadBiomedicalImageFromFile',
                      'PackDetInputs')
#: the ``scales`` entry meaning "the training pipeline's own deterministic Resize"
PIPELINE_SCALE = 'pipeline'


class TeacherCacheError(ValueError):
    """A teacher cache that does not belong to the recipe, or is incomplete."""


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file (hex)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def text_digest(obj) -> str:
    """Short, stable digest of a JSON-able object (or its ``repr``)."""
    try:
        text = json.dumps(obj, sort_keys=True, default=repr)
    except TypeError:
        text = repr(obj)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_arrays(path: str, arrays: Dict[str, np.ndarray]) -> None:
    """Atomically write ``arrays`` as an uncompressed ``.npz``."""
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def write_manifest(folder: str, manifest: dict) -> None:
    """Atomically write ``manifest.json``."""
    data = json.dumps(manifest, indent=1, sort_keys=True, default=repr).encode()
    atomic_write_bytes(osp.join(folder, MANIFEST), lambda f: f.write(data))


def read_manifest(folder: str) -> dict:
    """Read ``manifest.json`` of a cache folder; one-sentence error when it is not a cache."""
    path = osp.join(folder, MANIFEST)
    if not osp.isfile(path):
        raise TeacherCacheError(
            f'{osp.abspath(folder)!r} is not a teacher cache (no {MANIFEST}); build it with '
            f'python tools/distill/cache_teacher.py RECIPE --out {folder}.')
    with open(path) as f:
        return json.load(f)


def entry_key(rel_path: str) -> str:
    """File-name stem of a sample: its path relative to the image folder, without extension."""
    stem = osp.splitext(rel_path)[0]
    return stem.replace(os.sep, '__').replace('/', '__')


def scale_tag(scale, flipped: bool) -> str:
    """``'s1.000'`` / ``'s1.000f'`` (the flipped image); ``'spipeline'`` for the pipeline's
    own resize."""
    base = f's{scale}' if scale == PIPELINE_SCALE else f's{float(scale):.3f}'
    return base + ('f' if flipped else '')


def flatten_taps(rec: Dict[str, object]) -> Dict[str, Tensor]:
    """Tap values as single maps: a tuple/list value ``v`` of tap ``n`` becomes ``n#0``, ``n#1``...

    Args:
        rec (dict): tap name -> Tensor or tuple/list of Tensors.

    Returns:
        dict[str, Tensor]: storage name -> map.
    """
    flat: Dict[str, Tensor] = {}
    for name, val in rec.items():
        if isinstance(val, (tuple, list)):
            for i, part in enumerate(val):
                if not isinstance(part, Tensor):
                    raise TeacherCacheError(f'teacher tap {name!r} part {i} is a '
                                            f'{type(part).__name__}; the cache stores tensors '
                                            '(or tuples of tensors).')
                flat[f'{name}#{i}'] = part
        elif isinstance(val, Tensor):
            flat[name] = val
        else:
            raise TeacherCacheError(f'teacher tap {name!r} is a {type(val).__name__}; the cache '
                                    'stores tensors (or tuples of tensors): tap a tensor output.')
    return flat


def tap_parts(facts: dict, name: str) -> List[Tuple[str, dict]]:
    """(storage name, facts) of every map of tap ``name`` (one, or one per tuple element)."""
    meta = facts[name]
    if 'parts' in meta:
        return [(f'{name}#{i}', part) for i, part in enumerate(meta['parts'])]
    return [(name, meta)]


def input_fingerprint(inputs: Tensor) -> Tensor:
    """Per-sample signature of a preprocessed batch: (mean, std, top-half mean, left-half mean).

    Args:
        inputs (Tensor): N x C x H x W.

    Returns:
        Tensor: N x 4, float64 on the CPU.
    """
    x = inputs.detach().double()
    n, _, h, w = x.shape
    flat = x.reshape(n, -1)
    return torch.stack([
        flat.mean(1),
        flat.std(1), x[:, :, :h // 2].reshape(n, -1).mean(1), x[..., :w // 2].reshape(n, -1).mean(1)
    ], 1).cpu()


# ----------------------------------------------------------------------------------------------
# compact storage of one tap
# ----------------------------------------------------------------------------------------------
def encode_tap(value: Tensor, topk: Optional[int], dtype: str = 'float16') -> Dict[str, np.ndarray]:
    """Arrays for one tap (``C x h x w`` or ``N x C x h x w``); top-k along dim -3.

    ``dtype`` is ``'float16'`` (default, half the size) or ``'float32'`` (bit-equal targets).

    Returns:
        dict: ``{'': dense}`` or ``{'.val': top-k values, '.idx': their classes, '.rest': the
        value given to every other class}``.
    """
    if dtype not in ('float16', 'float32'):
        raise ValueError(f"teacher cache dtype must be 'float16' or 'float32', got {dtype!r}.")
    value = value.detach().float().cpu()
    c = value.shape[-3]
    if not topk or topk >= c:
        return {'': value.numpy().astype(dtype)}
    vals, idx = value.topk(topk, dim=-3)
    mask = torch.ones_like(value, dtype=torch.bool).scatter_(-3, idx, False)
    rest = torch.where(mask, value, torch.full_like(value, -math.inf))
    rest = torch.logsumexp(rest, dim=-3, keepdim=True) - math.log(c - topk)
    idx_dtype = torch.uint8 if c <= 256 else torch.int16
    return {
        '.val': vals.numpy().astype(dtype),
        '.idx': idx.to(idx_dtype).numpy(),
        '.rest': rest.numpy().astype(dtype)
    }


def encode_taps(taps: Dict[str, Tensor],
                topk: Optional[int],
                dtype: str = 'float16') -> Dict[str, np.ndarray]:
    """:func:`encode_tap` of every tap, keyed ``<tap name><suffix>`` as a cache entry stores them
    (:func:`tap_arrays` selects one tap's arrays again)."""
    return {
        name + suffix: arr
        for name, value in taps.items()
        for suffix, arr in encode_tap(value, topk, dtype).items()
    }


def tap_arrays(arrays, name: str) -> Dict[str, np.ndarray]:
    """The arrays of one tap in a cache entry written by :func:`encode_taps`."""
    return {k: v for k, v in arrays.items() if k == name or k.startswith(name + '.')}


def decode_tap(arrays, name: str, channels: int) -> Tensor:
    """Inverse of :func:`encode_tap` (float32 tensor)."""
    if name in arrays:
        return torch.from_numpy(np.asarray(arrays[name])).float()
    vals = torch.from_numpy(np.asarray(arrays[name + '.val'])).float()
    idx = torch.from_numpy(np.asarray(arrays[name + '.idx']).astype(np.int64))
    rest = torch.from_numpy(np.asarray(arrays[name + '.rest'])).float()
    shape = list(vals.shape)
    shape[-3] = channels
    dense = rest.expand(*shape).clone()
    return dense.scatter_(-3, idx, vals)


# ----------------------------------------------------------------------------------------------
# geometric replay
# ----------------------------------------------------------------------------------------------
def _axis_map(n_out: int, in_size: float, flip_width: Optional[int], offset: int,
              sample_scale: float, cache_scale: float, cache_in: int, cache_out: int,
              flip_cache: bool) -> Tensor:
    """Source pixel coordinates (float64) along one axis, see :func:`replay_coords`."""
    j = torch.arange(n_out, dtype=torch.float64)
    xb = (j + 0.5) * (in_size / n_out) - 0.5  # pixel centre in the batch tensor
    if flip_width is not None:
        xb = flip_width - 1 - xb  # undo the flip of the crop
    xr = xb + offset  # undo the crop
    xo = (xr + 0.5) / sample_scale - 0.5  # undo the resize: original image
    xc = (xo + 0.5) * cache_scale - 0.5  # the cached (resized) image
    u = (xc + 0.5) * (cache_out / cache_in) - 0.5  # the cached map
    if flip_cache:
        u = cache_out - 1 - u
    return u


def replay_coords(out_hw: Tuple[int, int], batch_hw: Tuple[int, int], meta: dict,
                  cache_scale_xy: Tuple[float, float], cache_img_hw: Tuple[int, int],
                  cache_map_hw: Tuple[int, int], flip_cache: bool) -> Tuple[Tensor, Tensor]:
    """Where each cell of one training sample's tap lies in the cached whole-image map.

    The target cell centre is taken back through the sample's flip (of its crop), crop box and
    resize to the original image, then forward through the cached image's resize to the cached
    map (pixel-centre convention throughout, as ``align_corners=False``).

    Args:
        out_hw (tuple): size of the target tap map (h, w).
        batch_hw (tuple): size of the (padded) batch tensor the tap was computed from.
        meta (dict): the sample's meta (``scale_factor`` (w, h), ``crop_bbox`` (y1, y2, x1, x2),
            ``flip``/``flip_direction``, ``img_shape``).
        cache_scale_xy (tuple): the cached image's resize factors (x, y).
        cache_img_hw (tuple): the cached image's size (h, w).
        cache_map_hw (tuple): the cached map's size (h, w).
        flip_cache (bool): the cached map is of the mirrored image.

    Returns:
        tuple: (row coordinates (h,), column coordinates (w,)), float64, in pixels of the cached
        map (centre of pixel ``i`` at ``i``).
    """
    sx, sy = (float(v) for v in (meta.get('scale_factor') or (1.0, 1.0))[:2])
    crop_h, crop_w = (int(v) for v in meta['img_shape'][:2])
    y1, _, x1, _ = meta.get('crop_bbox') or (0, crop_h, 0, crop_w)
    flipped = bool(meta.get('flip', False))
    direction = meta.get('flip_direction') or 'horizontal'
    fx = crop_w if flipped and direction in ('horizontal', 'diagonal') else None
    fy = crop_h if flipped and direction in ('vertical', 'diagonal') else None
    ux = _axis_map(out_hw[1], batch_hw[1], fx, x1, sx, cache_scale_xy[0], cache_img_hw[1],
                   cache_map_hw[1], flip_cache)
    uy = _axis_map(out_hw[0], batch_hw[0], fy, y1, sy, cache_scale_xy[1], cache_img_hw[0],
                   cache_map_hw[0], False)
    return uy, ux


def coords_to_grid(uy: Tensor, ux: Tensor, map_hw: Tuple[int, int]) -> Tensor:
    """Pixel coordinates of :func:`replay_coords` -> 1 x h x w x 2 ``F.grid_sample`` grid
    (``align_corners=False``) over a map of ``map_hw``."""
    gx = ((ux + 0.5) / map_hw[1] * 2 - 1).float()
    gy = ((uy + 0.5) / map_hw[0] * 2 - 1).float()
    return torch.stack(torch.meshgrid(gy, gx, indexing='ij')[::-1], -1).unsqueeze(0)


def sample_window(u: Tensor, size: int) -> Tuple[int, int]:
    """The pixel range ``[lo, hi)`` of a map axis of ``size`` that bilinear sampling at ``u``
    (``padding_mode='border'``) reads: the neighbours of every coordinate, clamped to the map.

    Sampling the window at ``u - lo`` with the border clamp gives the same values as sampling
    the whole axis at ``u``: a coordinate beyond a map edge clamps to that edge either way,
    because the window then reaches it.
    """
    lo = int(math.floor(float(u.min())))
    hi = int(math.floor(float(u.max()))) + 2
    return max(0, min(lo, size - 1)), max(1, min(hi, size))


def check_replayable(meta: dict, where: str) -> None:
    """Stop when a sample's meta shows geometry the geometric cache cannot replay."""
    img_shape = tuple(int(v) for v in meta['img_shape'][:2])
    ori = meta.get('ori_shape')
    sf = meta.get('scale_factor') or (1.0, 1.0)
    if 'crop_bbox' not in meta and ori is not None:
        resized = (round(ori[0] * float(sf[1])), round(ori[1] * float(sf[0])))
        if any(abs(a - b) > 1 for a, b in zip(resized, img_shape)):
            raise TeacherCacheError(
                f'{where}: the sample was cropped (image {resized} -> {img_shape}) but its crop '
                "box was not recorded; use dict(type='RecordedRandomCrop', ...) instead of "
                "'RandomCrop' and PackSegInputs(meta_keys=rtkd.datasets.GEOMETRY_META_KEYS) in "
                'the training pipeline, or build an exact cache (--exact).')
    if meta.get('flip') and (meta.get('flip_direction')
                             or 'horizontal') not in ('horizontal', 'vertical', 'diagonal'):
        raise TeacherCacheError(f"{where}: unknown flip direction {meta.get('flip_direction')!r}.")


def check_pipeline_replayable(pipeline: Sequence[dict]) -> None:
    """Geometric mode: every training transform must be replayed or known to be photometric.

    Args:
        pipeline (list[dict]): the training pipeline config.
    """
    kinds = [t.get('type') if isinstance(t, dict) else type(t).__name__ for t in pipeline]
    if 'RandomCrop' in kinds:
        raise TeacherCacheError(
            "the training pipeline uses mmseg's RandomCrop, which does not record its crop box; "
            "replace it with dict(type='RecordedRandomCrop', ...) (same crops for the same seed) "
            'and set PackSegInputs(meta_keys=rtkd.datasets.GEOMETRY_META_KEYS), or build an '
            'exact cache (--exact).')
    unknown = [k for k in kinds if k not in GEOMETRIC_TRANSFORMS + IGNORED_TRANSFORMS]
    if unknown:
        raise TeacherCacheError(
            f'the geometric teacher cache replays {", ".join(GEOMETRIC_TRANSFORMS)} and ignores '
            f'{", ".join(IGNORED_TRANSFORMS)}; the training pipeline also has '
            f'{", ".join(unknown)}: build an exact cache (--exact) or remove them.')
    geo = [k for k in kinds if k in GEOMETRIC_TRANSFORMS]
    order = {
        'Resize': 0,
        'RandomResize': 0,
        'RandomChoiceResize': 0,
        'RecordedRandomCrop': 1,
        'RandomFlip': 2
    }
    if [order[k] for k in geo] != sorted(order[k] for k in geo):
        raise TeacherCacheError(
            f'the geometric teacher cache replays resize -> crop -> flip in this order; the '
            f'training pipeline has {" -> ".join(geo)}: reorder it or build an exact cache.')
    packs = [t for t in pipeline if isinstance(t, dict) and t.get('type') == 'PackSegInputs']
    if 'RecordedRandomCrop' in kinds and packs and 'crop_bbox' not in tuple(packs[-1].get(
            'meta_keys', ())):
        raise TeacherCacheError(
            "the training pipeline records crop boxes but PackSegInputs drops them: set "
            'PackSegInputs(meta_keys=rtkd.datasets.GEOMETRY_META_KEYS).')


# ----------------------------------------------------------------------------------------------
# the reader used by the distiller
# ----------------------------------------------------------------------------------------------
class TeacherCache:
    """Read teacher targets for training batches from a cache folder.

    Args:
        folder (str): the cache folder (holds ``manifest.json``).
        expected (dict): fields the recipe's teacher has (``teacher_config``,
            ``teacher_checkpoint_sha256`` (None: not checked), ``taps``); any that differs from
            the manifest stops with a message naming the field.
    """

    def __init__(self, folder: str, expected: dict) -> None:
        self.folder = osp.abspath(folder)
        self.manifest = m = read_manifest(folder)
        if m.get('format') != CACHE_FORMAT:
            raise TeacherCacheError(f'teacher cache {self.folder!r} has format '
                                    f"{m.get('format')!r}, this rtkd reads {CACHE_FORMAT}; "
                                    'rebuild it with tools/distill/cache_teacher.py.')
        if m.get('status') != 'complete':
            raise TeacherCacheError(
                f"teacher cache {self.folder!r} is incomplete ({m.get('done', 0)} of "
                f"{m.get('total', '?')} entries); run tools/distill/cache_teacher.py again with "
                'the same arguments to finish it (what is on disk is kept).')
        self.mode = m['mode']
        compare_fields(m, expected, self.folder)
        self.taps: Dict[str, dict] = m['taps']
        self.index: Dict[str, str] = {osp.basename(r): r for r in m.get('files', [])}
        self.img_dir = m.get('img_dir', '')

    # -- geometric ------------------------------------------------------------------------
    def _rel(self, img_path: str) -> str:
        ap = osp.abspath(img_path)
        if self.img_dir and ap.startswith(self.img_dir.rstrip(os.sep) + os.sep):
            return osp.relpath(ap, self.img_dir)
        rel = self.index.get(osp.basename(img_path))
        if rel is None:
            raise TeacherCacheError(
                f'sample {img_path!r} is not in the teacher cache {self.folder!r} (it holds '
                f"{len(self.index)} images of {self.img_dir!r}); the cache was built from "
                'another dataset: rebuild it for this recipe.')
        return rel

    def _load_entry(self, rel: str, scale: float, flipped: bool) -> Dict[str, np.ndarray]:
        path = osp.join(self.folder, 'entries', f'{entry_key(rel)}@{scale_tag(scale, flipped)}.npz')
        if not osp.isfile(path):
            raise TeacherCacheError(
                f'teacher cache {self.folder!r} has no entry for sample {rel!r} at scale {scale}'
                f"{' (flipped)' if flipped else ''} ({path!r} is missing): rebuild or finish "
                'the cache with tools/distill/cache_teacher.py.')
        try:  # every member read here, so a truncated file fails with this message
            with np.load(path) as arrays:
                return {k: arrays[k] for k in arrays.files}
        except Exception as e:  # truncated / corrupted file
            raise TeacherCacheError(f'cannot read teacher cache entry {path!r} ({e}); delete it '
                                    'and run tools/distill/cache_teacher.py again.') from e

    def _pick_scale(self, sample_scale: float):
        scales = self.manifest['scales']
        if scales == [PIPELINE_SCALE]:
            return PIPELINE_SCALE
        return min(scales, key=lambda c: abs(math.log(c) - math.log(max(sample_scale, 1e-6))))

    def out_shape(self, tap, batch_hw: Tuple[int, int]) -> Tuple[int, int]:
        """Size the live teacher's tap would have for a batch of ``batch_hw``.

        Args:
            tap (str | dict): tap name, or the facts of one stored map (see :func:`tap_parts`).
            batch_hw (tuple): (padded) batch size (h, w).
        """
        facts = self.taps[tap] if isinstance(tap, str) else tap
        probe = facts.get('probe', {})
        key = f'{batch_hw[0]}x{batch_hw[1]}'
        if key in probe:
            return tuple(probe[key])
        sh, sw = facts['stride']
        return (math.ceil(batch_hw[0] / sh), math.ceil(batch_hw[1] / sw))

    def _assemble(self, tap_names: Sequence[str], maps: Dict[str, Tensor]) -> Dict[str, object]:
        """Storage maps -> tap values (tuples for tuple taps)."""
        return {
            t:
            tuple(maps[k]
                  for k, _ in tap_parts(self.taps, t)) if 'parts' in self.taps[t] else maps[t]
            for t in tap_names
        }

    def geometric(self, tap_names: Sequence[str], data_samples: list, batch_hw: Tuple[int, int],
                  device) -> Dict[str, Tensor]:
        """Teacher targets for a batch by geometric replay (see the module docstring).

        The batch's entries are read by a pool of threads (a cold read is disk-bound, so several
        in flight are ~2.5x faster than one after the other, measured on the 29 GB OFD cache);
        each sample decodes only the window of the cached map its tap covers.
        """
        stored = [p for t in tap_names for p in tap_parts(self.taps, t)]
        flip_cached = bool(self.manifest.get('flip'))
        jobs = []
        for ds in data_samples:
            meta = ds.metainfo
            check_replayable(meta, f"sample {meta.get('img_path')!r}")
            rel = self._rel(meta['img_path'])
            sx, sy = (float(v) for v in (meta.get('scale_factor') or (1.0, 1.0))[:2])
            flipped = bool(meta.get('flip')) and flip_cached and \
                (meta.get('flip_direction') or 'horizontal') == 'horizontal'
            jobs.append((meta, rel, self._pick_scale(math.sqrt(sx * sy)), flipped))

        # threads do I/O only (numpy releases the GIL while reading); torch stays on this one
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(jobs)))) as pool:
            entries = list(pool.map(lambda job: self._load_entry(*job[1:]), jobs))
        per_sample = []
        for (meta, _, _, flipped), arrays in zip(jobs, entries):
            cache_img_hw = tuple(int(v) for v in arrays['__img_shape'])
            cache_scale_xy = tuple(float(v) for v in arrays['__scale_factor'])
            maps = {}
            for t, facts in stored:
                parts = tap_arrays(arrays, t)
                map_hw = tuple(next(iter(parts.values())).shape[-2:])
                # a flipped sample reads the mirrored image's map (flip_cache) when cached
                uy, ux = replay_coords(
                    self.out_shape(facts, batch_hw),
                    batch_hw,
                    meta,
                    cache_scale_xy,
                    cache_img_hw,
                    map_hw,
                    flip_cache=flipped)
                (y0, y1), (x0, x1) = sample_window(uy, map_hw[0]), sample_window(ux, map_hw[1])
                src = decode_tap({
                    k: v[..., y0:y1, x0:x1]
                    for k, v in parts.items()
                }, t, facts['channels'])
                maps[t] = F.grid_sample(
                    src.unsqueeze(0),
                    coords_to_grid(uy - y0, ux - x0, (y1 - y0, x1 - x0)),
                    mode='bilinear',
                    padding_mode='border',
                    align_corners=False)[0]
            per_sample.append(maps)
        out = {t: torch.stack([m[t] for m in per_sample]).to(device) for t, _ in stored}
        return self._assemble(tap_names, out)

    # -- exact ----------------------------------------------------------------------------------
    def check_length(self, max_iters: Optional[int]) -> None:
        """Exact mode: stop when the run has more iterations than the cache holds."""
        if max_iters is not None and int(max_iters) > self.manifest['iters']:
            raise TeacherCacheError(
                f"exact teacher cache {self.folder!r} holds {self.manifest['iters']} iterations; "
                f'the run has max_iters={max_iters}: build it with --iters {max_iters} (what is on '
                'disk is kept) or shorten the run.')

    def exact(self, tap_names: Sequence[str], iteration: int, rank: int, inputs: Tensor,
              data_samples: list) -> Dict[str, Tensor]:
        """Teacher targets of training iteration ``iteration`` on ``rank``; checks the batch."""
        m = self.manifest
        if iteration >= m['iters']:
            raise TeacherCacheError(
                f'exact teacher cache {self.folder!r} holds {m["iters"]} iterations; training is '
                f'at iteration {iteration}: build it with --iters >= the run\'s max_iters.')
        path = osp.join(self.folder, 'exact', f'rank{rank}', f'iter_{iteration:07d}.npz')
        if not osp.isfile(path):
            raise TeacherCacheError(f'exact teacher cache entry {path!r} is missing; finish the '
                                    'cache with tools/distill/cache_teacher.py --exact.')
        arrays = np.load(path)
        want = torch.from_numpy(arrays['__fingerprint'])
        have = input_fingerprint(inputs)
        names = [str(s) for s in arrays['__img_path']]
        if want.shape != have.shape or not torch.allclose(want, have, rtol=1e-4, atol=1e-4):
            bad = 0 if want.shape != have.shape else int(
                (~torch.isclose(want, have, rtol=1e-4, atol=1e-4)).any(1).nonzero()[0])
            now = data_samples[bad].metainfo.get('img_path') if data_samples else '?'
            raise TeacherCacheError(
                f'exact teacher cache {self.folder!r}: iteration {iteration} (rank {rank}) was '
                f'built for {names[bad] if bad < len(names) else names!r} but training has '
                f'{now!r} with other augmentation; the training stream differs from the cached '
                f"one (cached with seed {m.get('seed')}, batch {m.get('batch_size')}, world size "
                f"{m.get('world_size')}): use the cache's settings or rebuild it.")
        maps = {
            k: decode_tap(arrays, k, facts['channels']).to(inputs.device)
            for t in tap_names
            for k, facts in tap_parts(self.taps, t)
        }
        return self._assemble(tap_names, maps)


def compare_fields(manifest: dict, expected: dict, where: str) -> None:
    """Raise :class:`TeacherCacheError` naming the first field that differs.

    ``expected`` values of None are not checked (e.g. a checkpoint that is not on this machine).
    Taps: every expected teacher tap must be cached with the same tap string.
    """
    for key in ('teacher_config', 'teacher_checkpoint_sha256', 'dataset', 'pipeline', 'seed',
                'batch_size', 'world_size'):
        if key not in expected or expected[key] is None:
            continue
        have = manifest.get(key)
        if have != expected[key]:
            raise TeacherCacheError(
                f'teacher cache {where!r} was made with another {key.replace("_", " ")} '
                f'(cache: {str(have)[:80]!r}, recipe: {str(expected[key])[:80]!r}); rebuild it '
                'with tools/distill/cache_teacher.py RECIPE --out DIR.')
    for name, text in (expected.get('taps') or {}).items():
        cached = manifest.get('taps', {}).get(name)
        if cached is None:
            raise TeacherCacheError(
                f'teacher tap {name!r} ({text!r}) is not in the teacher cache {where!r} (it holds '
                f"{', '.join(manifest.get('taps', {})) or 'none'}); rebuild the cache for this "
                'recipe.')
        if cached['text'] != text:
            raise TeacherCacheError(
                f"teacher tap {name!r} is {text!r} in the recipe but {cached['text']!r} in the "
                f'teacher cache {where!r}; rebuild the cache for this recipe.')
