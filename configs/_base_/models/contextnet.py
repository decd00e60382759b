# ContextNet cn14 (Poudel et al., BMVC 2018): deep branch on the 1/4-scaled image, shallow branch on
# the full image, feature fusion, 2-DSConv classifier; softmax CE, no auxiliary heads.
# 0.875 M params for 19 classes (paper: 0.85 M).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='RTContextNet',
        in_channels=3,
        deep_scale=4,
        deep_stem_channels=32,
        deep_bottlenecks=((1, 32, 1, 1), (6, 32, 1, 1), (6, 48, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1),
                          (6, 128, 2, 1)),
        shallow_channels=(32, 64, 128, 128),
        shallow_strides=(2, 2, 2, 1),
        fusion_channels=128,
        fusion_dilation=4,
        out_indices=(0, 1, 2),
        norm_cfg=norm_cfg,
        act_cfg=dict(type='ReLU'),
        bottleneck_act_cfg=dict(type='ReLU6'),
        align_corners=False),
    decode_head=dict(
        type='RTFastSCNNHead',  # ContextNet's classifier: 2 DSConv + dropout + 1x1 conv
        in_channels=128,
        channels=128,
        num_convs=2,
        in_index=2,
        num_classes=19,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
