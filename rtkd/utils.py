"""Small runtime helpers shared by ``tools/`` scripts and the distiller."""
from __future__ import annotations

import os
import os.path as osp
import platform
import tempfile

import torch


def setup_cpu_distributed(cfg) -> bool:
    """Prepare a config for ``torchrun ... --launcher pytorch`` on a machine without CUDA.

    mmengine 0.10's ``init_dist`` calls ``torch.cuda.set_device`` and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail on CPU. When launched by torchrun without CUDA we
    initialise a ``gloo`` process group ourselves (so the Runner skips ``init_dist``) and let DDP
    wrap CPU modules (``device_ids=None``). On GPUs nothing is changed (NCCL as usual).

    Args:
        cfg (mmengine.Config): the config; ``model_wrapper_cfg`` is filled in when needed.

    Returns:
        bool: whether a CPU (gloo) process group was created.
    """
    if torch.cuda.is_available() or 'RANK' not in os.environ:
        return False
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    return True


def check_file(path: str, what: str) -> str:
    """Fail early, in one sentence, when a local file is missing (URLs pass through).

    Args:
        path (str): local path or URL.
        what (str): what the file is, for the message (e.g. ``'checkpoint'``).

    Returns:
        str: ``path`` unchanged.
    """
    if '://' in path:
        return path
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file not found: {osp.abspath(path)!r} does not exist.')
    return path


def atomic_write_bytes(path: str, write_fn) -> None:
    """Write a file so that a reader sees the old file or the whole new one, never a part.

    ``write_fn(fileobj)`` writes into a temporary file in the same folder, which is flushed,
    fsynced, given the usual umask permissions and renamed over ``path``; on any error (an
    interrupt included) the temporary file is removed and ``path`` is left as it was. The one
    atomic writer of rtkd: teacher caches, installed teachers and archived run logs use it.

    Args:
        path (str): the file to (over)write; its folder is created when missing.
        write_fn (callable): called once with a binary file object open for writing.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=osp.basename(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from other users
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def cpu_name() -> str:
    """CPU model name from /proc/cpuinfo (Linux) or the platform module.

    Returns:
        str: e.g. ``'Intel(R) Xeon(R) Processor'``.
    """
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
