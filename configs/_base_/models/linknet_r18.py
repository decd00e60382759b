# LinkNet (Chaurasia & Culurciello, VCIP 2017, arXiv 1707.03718): ImageNet ResNet-18 encoder
# (plain torchvision stem; the stem output feeds the last decoder skip), LinkNet decoder blocks
# with transposed convs, full-resolution classifier. 11.5 M parameters for 19 classes.
# Without network access the ImageNet weights fall back to random init with a warning.
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
        type='RTResNet',
        depth=18,
        out_stem=True,  # the input of encoder block 1 is the skip of decoder block 1
        strides=(1, 2, 2, 2),  # torchvision ResNet-18 (the official Torch7 code uses it as is)
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    decode_head=dict(
        type='RTLinkNetHead',
        in_channels=(64, 64, 128, 256, 512),
        channels=32,
        dec_strides=(1, 2, 2, 2),  # must mirror the encoder strides
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
