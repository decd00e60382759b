"""tools/dataset_converters/class_weights.py on a tiny synthetic CamVid with known counts."""
from __future__ import annotations

import ast
import os
import os.path as osp

import numpy as np
import pytest

from helpers import CONFIG_DIR, ROOT, load_tool

TOOL = osp.join(ROOT, 'tools', 'dataset_converters', 'class_weights.py')
ESPNET = osp.join(CONFIG_DIR, 'espnet', 'espnet_1xb8-2k_camvid-360x480.py')
LINKNET = osp.join(CONFIG_DIR, 'linknet', 'linknet-r18_1xb8-5k_camvid-360x480.py')

# two 4x8 label maps; 11 is CamVid's void (mapped to 255 by the dataset, ignored)
LABELS = [
    [[0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 2, 2, 3, 3], [4, 4, 5, 6, 7, 8, 9, 10],
     [11, 11, 11, 11, 0, 0, 1, 1]],
    [[0, 0, 0, 0, 1, 1, 1, 1], [2, 2, 2, 2, 3, 3, 3, 3], [4, 5, 6, 7, 8, 9, 10, 10],
     [11, 11, 11, 11, 11, 11, 11, 11]],
]
# h = [14, 10, 6, 6, 3, 2, 2, 2, 2, 2, 3] (52 pixels), 12 void; by hand:
# espnet 1/ln(1.10 + h/52), linknet 1/ln(1.02 + h/14), espnet counting void 1/ln(1.10 + h/64)
ESPNET_W = [3.1822, 3.8997, 5.1266, 5.1266, 6.8293, 7.7114, 7.7114, 7.7114, 7.7114, 7.7114, 6.8293]
LINKNET_W = [1.4223, 1.8162, 2.6985, 2.6985, 4.7508, 6.6278, 6.6278, 6.6278, 6.6278, 6.6278, 4.7508]
ESPNET_VOID_W = [
    3.6142, 4.3834, 5.6465, 5.6465, 7.2971, 8.1088, 8.1088, 8.1088, 8.1088, 8.1088, 7.2971
]
ENET_W = [
    3.9363, 5.1941, 7.8758, 7.8758, 13.3651, 17.6005, 17.6005, 17.6005, 17.6005, 17.6005, 13.3651
]


@pytest.fixture(scope='module')
def tool():
    return load_tool(osp.relpath(TOOL, ROOT))


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory) -> str:
    import cv2
    root = str(tmp_path_factory.mktemp('camvid_counts'))
    for split in ('train', 'val', 'test'):
        os.makedirs(osp.join(root, split))
        os.makedirs(osp.join(root, split + 'annot'))
        for i, label in enumerate(LABELS):
            name = f'0001TP_{i:06d}.png'
            cv2.imwrite(osp.join(root, split, name), np.zeros((4, 8, 3), np.uint8))
            cv2.imwrite(osp.join(root, split + 'annot', name), np.array(label, np.uint8))
    return root


def printed_list(text: str) -> list:
    """The ``class_weight = [...]`` of the output, which must be valid Python as a whole."""
    tree = ast.parse(text)
    [assign] = [n for n in tree.body if isinstance(n, ast.Assign)]
    assert assign.targets[0].id == 'class_weight'
    return ast.literal_eval(assign.value)


@pytest.mark.parametrize(
    'config, args, expected',
    [
        (ESPNET, ['--method', 'espnet'], ESPNET_W),
        (LINKNET, ['--method', 'linknet'], LINKNET_W),
        (ESPNET, ['--method', 'espnet', '--count-ignored'], ESPNET_VOID_W),
        (ESPNET, ['--method', 'enet'], ENET_W),
        (ESPNET, ['--method', 'espnet', '--c', '1.02'], ENET_W),
        (LINKNET, ['--method', 'linknet', '--count-ignored'], LINKNET_W),  # void is not the max
    ])
def test_weights_on_tiny_dataset(tool, tiny_root, capsys, config, args, expected) -> None:
    weights = tool.main(
        [config, *args, '--cfg-options', f'train_dataloader.dataset.data_root={tiny_root}'])
    out = capsys.readouterr().out
    assert printed_list(out) == expected
    assert weights == pytest.approx(expected, abs=5e-5)
    assert '2 label maps, 52 pixels of 11 classes, 12 ignored (255)' in out
    assert '# took ' in out


def test_counts_follow_the_config_split(tool, tiny_root) -> None:
    from mmengine.config import Config
    cfg = Config.fromfile(ESPNET)
    cfg.merge_from_dict({'val_dataloader.dataset.data_root': tiny_root})
    hist, ignored, outside, maps, classes = tool.count_labels(cfg, 'val')
    assert hist.tolist() == [14, 10, 6, 6, 3, 2, 2, 2, 2, 2, 3]
    assert (ignored, outside, maps, len(classes)) == (12, 0, 2, 11)


def test_formulas_and_errors(tool) -> None:
    assert tool.class_weights([1, 1], 'linknet') == pytest.approx([1 / np.log(2.02)] * 2)
    assert tool.class_weights([3, 1], 'espnet',
                              c=1.5) == pytest.approx([1 / np.log(2.25), 1 / np.log(1.75)])
    assert tool.class_weights([1, 1], 'linknet', ignored=4,
                              count_ignored=True) == pytest.approx([1 / np.log(1.27)] * 2)
    with pytest.raises(ValueError, match='no labelled pixel'):
        tool.class_weights([0, 0], 'enet')
    with pytest.raises(SystemExit):
        tool.parse_args([ESPNET, '--c', '0.9'])
    assert tool.format_weights([1.0] * 3) == 'class_weight = [1.0000, 1.0000, 1.0000]'
    wrapped = tool.format_weights([10.12345] * 19)
    assert all(len(line) <= 100 for line in wrapped.splitlines())
    assert ast.literal_eval(wrapped.split('=', 1)[1].strip()) == [10.1235] * 19
