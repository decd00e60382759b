"""``rtkd::`` config paths: the configs shipped with the package, as ``mmseg::`` does it.

After ``import rtkd`` a config path ``'rtkd::fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py'``
works wherever mmengine accepts ``pkg::`` paths: as a ``_base_`` entry, in
``mmengine.hub.get_config`` and therefore as a distiller's ``student=`` / ``teacher=`` config.

Where the files are:

* an installed package (``pip install .``, wheel, ``--target``): ``setup.py`` copies
  ``configs/``, ``tools/`` and ``model-index.yml`` into ``rtkd/.mim/`` (the OpenMMLab layout mim
  and mmengine read);
* a source checkout (editable install or ``PYTHONPATH``): the repository's ``configs/`` next to
  the package, so an edit is seen at once and a stale ``rtkd/.mim`` copy from a local wheel build
  never shadows it.

How it differs from mmengine's own ``pkg::`` handling (which only knows the packages in
``mmengine.config.utils.MODULE2PACKAGE``): :func:`register`, run when this module is imported
(i.e. by ``import rtkd``), makes ``Config``'s base-path lookup and ``mmengine.hub.get_config``
resolve ``rtkd::`` paths with :func:`resolve`, and an ``rtkd::`` base is read exactly like a local
``_base_`` file. mmengine would give every object of a ``pkg::`` base the scope ``pkg``
(``_scope_='rtkd'``), but rtkd has no registry scope of its own - its modules register into
mmseg / mmdet / mmpretrain and the root registries, and each rtkd config sets its own
``default_scope``. mmengine's ``get_installed_path`` (wrong for editable installs) is not used.
Configs must therefore be loaded after ``import rtkd`` (``tools/train.py`` does it first).
"""
from __future__ import annotations

import functools
import os.path as osp

PACKAGE = 'rtkd'
PREFIX = PACKAGE + '::'
_PKG_DIR = osp.dirname(osp.abspath(__file__))


def config_root() -> str:
    """The folder ``rtkd::`` paths are relative to.

    Returns:
        str: ``<repo>/configs`` for a source checkout, else ``<package>/.mim/configs``.
    """
    repo = osp.dirname(_PKG_DIR)
    if osp.isfile(osp.join(repo, 'setup.py')) and osp.isdir(osp.join(repo, 'configs')):
        return osp.join(repo, 'configs')
    return osp.join(_PKG_DIR, '.mim', 'configs')


def resolve(path: str) -> str:
    """Turn ``'rtkd::<folder>/<file>.py'`` into the absolute path of the shipped config.

    Args:
        path (str): an ``rtkd::`` path.

    Returns:
        str: absolute path of an existing file.

    Raises:
        ValueError: ``path`` does not start with ``rtkd::``.
        FileNotFoundError: no such shipped config.
    """
    if not path.startswith(PREFIX):
        raise ValueError(f'{path!r} is not an rtkd:: config path; write it as '
                         f"'rtkd::<folder>/<file>.py' (relative to rtkd's configs/).")
    rel = path[len(PREFIX):].lstrip('/')
    full = osp.join(config_root(), rel)
    if not osp.isfile(full):
        raise FileNotFoundError(
            f'{path!r} is not a config shipped with rtkd (looked for {full}); give a path '
            f'relative to configs/, e.g. rtkd::fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py.')
    return full


def register() -> None:
    """Teach mmengine the ``rtkd::`` prefix (idempotent; run by ``import rtkd``)."""
    import mmengine.hub
    from mmengine.config import Config

    original = Config.__dict__['_get_cfg_path'].__func__
    if not getattr(original, '_rtkd', False):

        @functools.wraps(original)
        def _get_cfg_path(cfg_path: str, filename: str):
            if cfg_path.startswith(PREFIX):
                return resolve(cfg_path), None
            return original(cfg_path, filename)

        _get_cfg_path._rtkd = True
        Config._get_cfg_path = staticmethod(_get_cfg_path)

    get_config = mmengine.hub.get_config
    if not getattr(get_config, '_rtkd', False):

        @functools.wraps(get_config)
        def rtkd_get_config(cfg_path: str, pretrained: bool = False):
            if cfg_path.startswith(PREFIX):
                if pretrained:
                    raise ValueError(f'{cfg_path!r}: rtkd configs carry no pretrained-weight '
                                     f'URLs; pass pretrained=False and set the checkpoint.')
                return Config.fromfile(resolve(cfg_path))
            return get_config(cfg_path, pretrained)

        rtkd_get_config._rtkd = True
        mmengine.hub.get_config = rtkd_get_config
        mmengine.hub.hub.get_config = rtkd_get_config


register()
