"""Mix-ups a user makes: a distiller checkpoint in a student config loads its student, a student
checkpoint in a recipe loads into the student; an unknown loss / connector type lists close
names."""
from __future__ import annotations

import torch
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner.checkpoint import load_checkpoint

import rtkd  # noqa: F401
from helpers import seg_model


def _fresh_logger():
    """A new current MMLogger whose handler writes to this test's (captured) stdout."""
    import uuid

    from mmengine.logging import MMLogger
    MMLogger.get_instance(f'test_{uuid.uuid4().hex}')


def _batch(dist):
    """A preprocessed batch of two random 32x48 images with labels."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    x = torch.rand(2, 3, 32, 48) * 255
    samples = []
    for _ in range(2):
        ds = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 11, (1, 32, 48))))
        ds.set_metainfo(dict(img_shape=(32, 48), ori_shape=(32, 48), pad_shape=(32, 48)))
        samples.append(ds)
    return dist.data_preprocessor(dict(inputs=list(x.to(torch.uint8)), data_samples=samples), True)


def _build(cfg):
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg)


def _distiller(teacher_model):
    return dict(
        type='Distiller',
        student=dict(model=seg_model(4), scope='mmseg'),
        teacher=dict(model=teacher_model, scope='mmseg', checkpoint=None),
        taps=dict(s='student:decode_head.conv_seg', t='teacher:decode_head.conv_seg'),
        losses=dict(loss_kd=dict(type='ChannelWiseKD', tau=1.0, student='s', teacher='t')))


def test_distiller_checkpoint_into_student_config(tmp_path, capsys):
    _fresh_logger()
    torch.manual_seed(0)
    dist = _build(_distiller(seg_model(4)))
    path = str(tmp_path / 'iter_2.pth')
    torch.save(dict(state_dict=dist.state_dict()), path)
    torch.manual_seed(1)
    student = _build(seg_model(4))
    assert not torch.equal(student.decode_head.conv_seg.weight,
                           dist.student.decode_head.conv_seg.weight)
    load_checkpoint(student, path, map_location='cpu', logger='current')
    for k, v in dist.student.state_dict().items():
        assert torch.equal(student.state_dict()[k], v), k
    assert 'a distiller checkpoint in a plain model' in capsys.readouterr().out


def test_student_checkpoint_into_recipe_and_runner_uses_the_rule(tmp_path, capsys):
    import mmengine.runner.runner as runner_mod
    _fresh_logger()
    torch.manual_seed(0)
    student = _build(seg_model(4))
    path = str(tmp_path / 'student_latest.pth')
    torch.save(dict(state_dict=student.state_dict()), path)
    torch.manual_seed(1)
    dist = _build(_distiller(seg_model(4)))
    runner_mod._load_checkpoint_to_model(dist, torch.load(path), logger='current')
    for k, v in student.state_dict().items():
        assert torch.equal(dist.student.state_dict()[k], v), k
    assert 'a student checkpoint in a distiller' in capsys.readouterr().out


def test_matching_checkpoints_are_left_alone(tmp_path, capsys):
    _fresh_logger()
    torch.manual_seed(0)
    dist = _build(_distiller(seg_model(4)))
    path = str(tmp_path / 'iter_2.pth')
    torch.save(dict(state_dict=dist.state_dict()), path)
    other = _build(_distiller(seg_model(4)))
    load_checkpoint(other, path, map_location='cpu', logger='current')
    assert torch.equal(other.student.decode_head.conv_seg.weight,
                       dist.student.decode_head.conv_seg.weight)
    assert 'checkpoint: a ' not in capsys.readouterr().out


def test_unknown_loss_and_connector_types_list_close_names():
    import pytest

    from rtkd.distill.connectors import build_connector
    cfg = _distiller(seg_model(4))
    cfg['losses'] = dict(loss_kd=dict(type='ChanelWiseKD', student='s', teacher='t'))
    with pytest.raises(KeyError, match='close registered names: ChannelWiseKD'):
        _build(cfg)
    with pytest.raises(
            KeyError,
            match="'ConvBnConnector' is not registered; close registered "
            'names: ConvBNConnector'):
        build_connector(dict(type='ConvBnConnector', in_channels=4, out_channels=8))


def test_teacher_with_other_class_count_is_named_not_a_connector_hint():
    import pytest
    teacher = seg_model(4)
    teacher['decode_head'] = dict(teacher['decode_head'], num_classes=19)
    dist = _build(_distiller(teacher)).train()
    data = _batch(dist)
    with pytest.raises(ValueError, match=r'19 vs 11 classes: set the teacher\'s num_classes') as e:
        dist.loss(data['inputs'], data['data_samples'])
    assert 'ConvBNConnector' not in str(e.value)


def test_one_summary_on_the_first_training_step(capsys):
    _fresh_logger()
    dist = _build(_distiller(seg_model(4))).train()
    for _ in range(2):
        data = _batch(dist)
        dist.loss(data['inputs'], data['data_samples'])
    out = capsys.readouterr().out
    assert out.count('Distiller: teacher model dict + None') == 1
    assert 'tap s = student:decode_head.conv_seg -> 2x11x4x6' in out
    assert 'loss loss_kd = ChannelWiseKD(s, t), weight 1.0' in out
