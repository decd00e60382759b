"""Template tests of the example add-on: the head's layers and output, and its config."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from projects.example_project.example_project import DSConvFCNHead

CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
    'example-fcn-dsconv_2k_camvid-360x480.py')


def test_head_is_depthwise_separable_and_predicts_classes():
    head = DSConvFCNHead(num_convs=3, in_channels=8, channels=6, num_classes=5, in_index=-1)
    depthwise = [m for m in head.convs.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(head.convs) == 3 and len(depthwise) == 3
    assert [m.groups for m in depthwise] == [8, 6, 6]  # one filter per input channel
    head.eval()
    out = head([torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 12)])
    assert out.shape == (2, 5, 8, 12)


def test_config_imports_the_head_and_builds():
    cfg = Config.fromfile(CONFIG)
    assert 'projects.example_project.example_project' in cfg.custom_imports.imports
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    assert isinstance(model.decode_head, DSConvFCNHead) and model.decode_head.num_classes == 11
