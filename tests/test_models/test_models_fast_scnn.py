"""Fast-SCNN (RTFastSCNN + RTFastSCNNHead): configs build, any-size logits, gradients, params."""
import pytest
import torch

from helpers import (build_model, count_params, load_cfg, loss_and_check_grads, predict_logits,
                     tiny_size_options)

CAMVID = 'configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py'
CITYSCAPES = 'configs/fast_scnn/fast-scnn_1xb12-248k_cityscapes-512x1024.py'
PAPER_PARAMS = 1.11e6


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return build_model(load_cfg(CAMVID, tiny_size_options((64, 96))))


@pytest.mark.parametrize('size', [(64, 96), (67, 99)])
def test_predict_logits_have_input_size(model, size):
    logits = predict_logits(model, *size)
    assert logits.shape == (11, *size)
    assert torch.isfinite(logits).all()


def test_backbone_outputs_and_odd_sizes(model):
    feats = model.backbone(torch.randn(1, 3, 67, 99))
    assert [f.shape[1] for f in feats] == [64, 128, 128]
    assert feats[0].shape[2:] == feats[2].shape[2:] == (9, 13)  # 1/8, rounded up
    assert feats[1].shape[2:] == (3, 4)  # 1/32


def test_loss_and_every_parameter_gets_gradient(model):
    losses = loss_and_check_grads(model, 64, 96)
    assert {'decode.loss_ce', 'aux_0.loss_ce', 'aux_1.loss_ce'} <= set(losses)


def test_paper_parameter_count():
    m = build_model(load_cfg(CITYSCAPES))
    n = count_params(m.backbone, m.decode_head)  # inference network, without auxiliary heads
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.05, n
    # the paper's 1x1 post-pooling conv and dilated fusion differ from mmseg's 1.40 M variant
    assert m.backbone.ppm.post_conv.conv.kernel_size == (1, 1)
    assert m.backbone.fusion.low_dwconv.conv.dilation == (4, 4)


def test_wrong_head_in_channels_fails_clearly():
    m = build_model(
        load_cfg(CAMVID, {
            'model.decode_head.in_channels': 64,
            'model.decode_head.channels': 64
        }))
    with pytest.raises(ValueError, match='in_channels=64 does not match'):
        predict_logits(m, 64, 96)


def test_bad_backbone_argument_fails_at_build():
    with pytest.raises(ValueError, match='same length'):
        build_model(load_cfg(CAMVID, {'model.backbone.global_blocks': (3, 3)}))


def test_onnx_export_matches_torch(model, tmp_path):
    """Pyramid pooling bins (3, 6) that do not divide the 1/32 map must still export."""
    ort = pytest.importorskip('onnxruntime')

    class Net(torch.nn.Module):

        def __init__(self, seg):
            super().__init__()
            self.seg = seg

        def forward(self, x):
            return self.seg.decode_head(self.seg.backbone(x))

    net = Net(model).eval()
    x = torch.randn(1, 3, 64, 96)  # 1/32 map is 2 x 3
    path = str(tmp_path / 'fast_scnn.onnx')
    torch.onnx.export(net, (x, ), path, opset_version=17, dynamo=False)
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ref = net(x)
    assert out.shape == tuple(ref.shape)
    assert torch.allclose(torch.from_numpy(out), ref, rtol=1e-3, atol=1e-5)
