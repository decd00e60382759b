# Fast-SCNN (Poudel et al., BMVC 2019) as in the paper: 1x1 post-pooling conv, dilation-4
# fusion depthwise conv, ReLU, softmax CE; auxiliary losses (weight 0.4) at the end of
# learning-to-downsample and of the global feature extractor (paper Sec. 4.1). 1.14 M params for
# 19 classes without the auxiliary heads (paper: 1.11 M). Registered as RTFastSCNN /
# RTFastSCNNHead (mmseg owns 'FastSCNN').
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
        type='RTFastSCNN',
        in_channels=3,
        downsample_channels=(32, 48, 64),
        global_channels=(64, 96, 128),
        global_blocks=(3, 3, 3),
        global_strides=(2, 2, 1),
        expand_ratio=6,
        pool_bins=(1, 2, 3, 6),
        ppm_kernel_size=1,
        fusion_channels=128,
        fusion_dilation=4,
        out_indices=(0, 1, 2),
        norm_cfg=norm_cfg,
        act_cfg=dict(type='ReLU'),
        align_corners=False),
    decode_head=dict(
        type='RTFastSCNNHead',
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
    auxiliary_head=[
        dict(
            type='FCNHead',
            in_channels=64,
            channels=32,
            num_convs=1,
            num_classes=19,
            in_index=0,
            norm_cfg=norm_cfg,
            concat_input=False,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True, loss_weight=0.4)),
        dict(
            type='FCNHead',
            in_channels=128,
            channels=32,
            num_convs=1,
            num_classes=19,
            in_index=1,
            norm_cfg=norm_cfg,
            concat_input=False,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True, loss_weight=0.4)),
    ],
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
