"""tools/misc/install_teacher.py: a trained teacher into the folder the teacher bases read."""
from __future__ import annotations

import os
import os.path as osp
import stat

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

import rtkd  # noqa: F401
from helpers import ROOT, load_tool

BN = dict(type='BN', requires_grad=True)


def tiny(aux: bool, base: int = 4) -> dict:
    head = dict(
        type='FCNHead',
        in_channels=base * 8,
        in_index=3,
        channels=base,
        num_convs=1,
        concat_input=False,
        num_classes=11,
        norm_cfg=BN)
    model = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1]),
        backbone=dict(
            type='ResNetV1c', depth=18, base_channels=base, stem_channels=base, norm_cfg=BN),
        decode_head=head,
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    if aux:
        model['auxiliary_head'] = dict(head, in_channels=base * 4, in_index=2)
    return model


@pytest.fixture
def trained(tmp_path):
    """A training config with an aux head + its inference child, and a training checkpoint."""
    (tmp_path / 'cfg').mkdir()
    (tmp_path / 'cfg' / 'train.py').write_text(
        f"default_scope = 'mmseg'\nmodel = {tiny(True)!r}\n"
        "train_dataloader = dict(batch_size=2)\ntrain_cfg = dict(max_iters=10)\n"
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))\n")
    (tmp_path / 'cfg' /
     'infer.py').write_text("_base_ = ['./train.py']\nmodel = dict(auxiliary_head=None)\n")
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        net = MODELS.build(tiny(True))
    ckpt = tmp_path / 'iter_10.pth'
    torch.save(
        dict(
            state_dict=net.state_dict(),
            meta=dict(iter=10),
            optimizer=dict(state={}, param_groups=[])), ckpt)
    return str(tmp_path / 'cfg' / 'infer.py'), str(ckpt), net.state_dict()


def test_install_writes_the_inference_weights_and_a_flat_config(trained, tmp_path, capsys):
    tool = load_tool('tools/misc/install_teacher.py')
    cfg, ckpt, src = trained
    dest = tmp_path / 'teachers'
    tool.main([cfg, ckpt, '--name', 'tiny_ft10', '--dest', str(dest)])
    out = torch.load(dest / 'tiny_ft10.pth', map_location='cpu', weights_only=True)
    keys = set(out['state_dict'])
    assert keys and not any(k.startswith('auxiliary_head') for k in keys)
    assert keys == {k for k in src if not k.startswith('auxiliary_head')}
    assert all(torch.equal(out['state_dict'][k], src[k]) for k in keys)
    assert out['meta']['iter'] == 10 and len(out['meta']['source_sha256']) == 64
    assert str(tmp_path) not in str(out['meta'])  # no folder of this machine in a shared file
    flat = Config.fromfile(str(dest / 'infer.py'))  # no _base_ left: loads anywhere
    assert '_base_' not in (dest / 'infer.py').read_text()
    assert flat.model.auxiliary_head is None and flat.train_dataloader is None
    assert flat.optim_wrapper is None and flat.train_cfg is None
    for f in ('tiny_ft10.pth', 'infer.py'):
        assert os.stat(dest / f).st_mode & stat.S_IROTH, f'{f} must be readable by others'
    assert 'tiny_ft10.pth' in capsys.readouterr().out
    # a second teacher with the same inference config keeps the config file
    tool.main([cfg, ckpt, '--name', 'tiny_again', '--dest', str(dest)])
    assert (dest / 'tiny_again.pth').is_file()


def test_install_refuses_what_does_not_fit(trained, tmp_path):
    tool = load_tool('tools/misc/install_teacher.py')
    cfg, ckpt, _ = trained
    dest = tmp_path / 'teachers'
    other = tmp_path / 'other.pth'
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.save(dict(state_dict=MODELS.build(tiny(False, base=8)).state_dict()), other)
    with pytest.raises(SystemExit, match='does not fit this config'):
        tool.main([cfg, str(other), '--name', 'bad', '--dest', str(dest)])
    assert not (dest / 'bad.pth').exists()
    (dest / 'infer.py').write_text(f"model = {tiny(False, base=8)!r}\n")
    with pytest.raises(SystemExit, match='already holds a different model config'):
        tool.main([cfg, ckpt, '--name', 'x', '--dest', str(dest)])
    with pytest.raises(SystemExit, match='without .pth'):
        tool.main([cfg, ckpt, '--name', 'x.pth', '--dest', str(dest)])
    os.environ.pop('RTKD_TEACHERS', None)
    with pytest.raises(SystemExit, match='set RTKD_TEACHERS'):
        tool.main([cfg, ckpt, '--name', 'x'])
    assert osp.isdir(ROOT)
