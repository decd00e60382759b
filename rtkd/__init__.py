"""rtkd: real-time segmentation networks and config-driven knowledge distillation for OpenMMLab 2.x.

Importing ``rtkd`` (what ``custom_imports = dict(imports=['rtkd'])`` does in a config) registers the
project's datasets, models, distillers, losses and hooks into the mmseg / mmdet / mmpretrain
registries and makes mmengine checkpoints load with torch's safe loader (see ``rtkd.compat`` for
the other fixes applied on import).
"""
from .version import __version__
from . import compat  # noqa: F401  (safe checkpoint loading on torch >= 2.6)
from . import config_paths  # noqa: F401  ('rtkd::<folder>/<file>.py' config paths)
from . import datasets, engine, models  # noqa: F401

__all__ = ['__version__']
from . import distill  # noqa: F401
from . import evaluation  # noqa: F401  (PerClassIoUMetric: per-class IoU as logged scalars)
