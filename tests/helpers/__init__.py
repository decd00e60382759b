"""Shared test helpers, importable as ``from helpers import X`` from every test module (pytest
puts ``tests/``, the folder of ``tests/conftest.py``, on ``sys.path``) and from the processes the
tests spawn (they inherit that path).

* :mod:`helpers.repo`: the repository paths, the CamVid config bases, tools loaded as modules,
  the distillation-recipe filter and naming scheme;
* :mod:`helpers.data`: tiny datasets made on the fly (CamVid, an image folder, COCO);
* :mod:`helpers.models`: tiny mmseg / mmdet models, a segmentation batch, a detection sample, a
  plain MSE loss (``_TestMSE``), a saved teacher;
* :mod:`helpers.losses`: seeded tensors and checks of the distillation-loss tests;
* :mod:`helpers.runner`: complete tiny Runner configs (segmentation, classification, detection)
  and ``torchrun``;
* :mod:`helpers.teacher_cache`: the recipes of the teacher-cache tests;
* :mod:`helpers.rt_models`: build / run / check the real-time segmentation network configs.

Kept out of ``conftest.py`` on purpose: the repository root has a ``conftest.py`` too, so
``from conftest import ...`` resolves to whichever comes first on ``sys.path`` (in a spawned
worker process: the root one).
"""
from .data import make_tiny_camvid, make_tiny_coco, make_tiny_folder, tiny_data_options
from .losses import assert_no_teacher_grad, np_softmax, rand
from .models import BN, CE, DP, PlainMSE, batch, det_sample, retinanet, seg_model, write_teacher
from .repo import (CAMVID_BASES, CONFIG_DIR, DISTILLER_TYPES, RECIPE_NAME, ROOT, is_distill_recipe,
                   load_tool)
from .rt_models import (build_model, count_params, load_cfg, loss_and_check_grads, predict_logits,
                        tiny_size_options)
from .runner import (TORCHRUN, cls_runner_config, det_runner_config, needs_torchrun, run_torchrun,
                     write_config)
from .teacher_cache import (AUG_PIPE, PIXEL_DP, PixelConvNet, build_distiller, pixel_model,
                            saved_teacher, seg_recipe, write_recipe)

__all__ = [
    'ROOT', 'CONFIG_DIR', 'CAMVID_BASES', 'DISTILLER_TYPES', 'RECIPE_NAME', 'is_distill_recipe',
    'load_tool', 'make_tiny_camvid', 'tiny_data_options', 'make_tiny_folder', 'make_tiny_coco',
    'BN', 'CE', 'DP', 'seg_model', 'batch', 'PlainMSE', 'write_teacher', 'retinanet', 'det_sample',
    'rand', 'np_softmax', 'assert_no_teacher_grad', 'write_config', 'cls_runner_config',
    'det_runner_config', 'TORCHRUN', 'needs_torchrun', 'run_torchrun', 'PIXEL_DP', 'PixelConvNet',
    'pixel_model', 'write_recipe', 'saved_teacher', 'build_distiller', 'AUG_PIPE', 'seg_recipe',
    'build_model', 'load_cfg', 'predict_logits', 'loss_and_check_grads', 'count_params',
    'tiny_size_options'
]
