# ESPNet (Mehta et al., ECCV 2018), p=2, q=8: ESP modules with hierarchical feature fusion, input
# reinforcement, class-space decoder with 2x2 deconvolutions; 0.363 M params for 19 classes
# (paper: 0.364 M). Trained end to end (the official code first trains the encoder alone).
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
        type='RTESPNet',
        in_channels=3,
        stem_channels=16,
        level_channels=(64, 128),
        num_blocks=(2, 8),
        dilations=(1, 2, 4, 8, 16),
        input_reinforcement=True,
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='RTESPNetHead',
        in_channels=(19, 131, 256),
        in_index=(0, 1, 2),
        num_classes=19,
        dropout_ratio=0.0,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
