# A segmentation student whose backbone comes from mmpretrain: MobileNetV2 (ImageNet weights from
# mmpretrain) inside an mmseg EncoderDecoder, features at 1/4, 1/8, 1/16, 1/32 (stages 1, 2, 4, 6:
# 24, 32, 96, 320 channels) fused by a light all-MLP head (mmseg SegformerHead, 128 channels).
# CamVid 360x480, the same 2k-iteration recipe as configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py.
_base_ = ['../../../fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py']
custom_imports = dict(imports=['rtkd', 'mmpretrain.models'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.MobileNetV2',
        widen_factor=1.0,
        out_indices=(1, 2, 4, 6),
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained',
            prefix='backbone.',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'mobilenet_v2/mobilenet_v2_batch256_imagenet_20200708-3b2dc3af.pth')),
    decode_head=dict(
        _delete_=True,
        type='SegformerHead',
        in_channels=[24, 32, 96, 320],
        in_index=[0, 1, 2, 3],
        channels=128,
        dropout_ratio=0.1,
        num_classes=11,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True, loss_weight=1.0)),
    auxiliary_head=None)
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True))
