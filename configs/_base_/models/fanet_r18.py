# FANet-18 (Hu et al., "Real-time Semantic Segmentation with Fast Attention", RA-L 2021):
# ImageNet ResNet-18 with an extra stride in stage 1 (features at 1/8..1/64), fast attention on
# every stage, top-down fusion, output stride 8, two auxiliary heads (0.5 each) in training.
# Layout and widths follow the official code (13.8 M parameters with 19 classes); the "up" 1x1
# convs have no padding (the official code pads them by 1, see ``up_padding`` of ``RTFANet``).
# Losses as the official code (OhemCELoss2D) on all three outputs: OHEM cross-entropy, pixels whose
# true-class probability is below 0.7, at least ``min_kept`` per image, averaged over the kept
# pixels. ``min_kept`` is the crop area / 16 (the official n_min); the value below is for 512x1024
# crops: configs with another crop set their own (see configs/fanet/).
# Without network access the ImageNet weights fall back to random init with a warning.
norm_cfg = dict(type='BN', requires_grad=True)
act_cfg = dict(type='LeakyReLU', negative_slope=0.01)  # the official code's activation
ohem_loss = dict(type='OhemCrossEntropyLoss', thresh=0.7, min_kept=512 * 1024 // 16)
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
        type='RTFANet',
        resnet_cfg=dict(
            type='RTResNet',
            depth=18,
            strides=(2, 2, 2, 2),  # the extra stride in stage 1
            norm_cfg=norm_cfg,
            init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
        out_channels=128,
        qk_channels=32,
        scale_by_pixels=True,  # the paper's 1/n (the official code omits it)
        up_padding=0,  # the official code pads its 1x1 "up" convs by 1 (project's choice: 0)
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        align_corners=False),
    decode_head=dict(  # concat(s_1, up(s_3)) -> conv3x3 256 -> classes, at 1/8
        type='RTFANetHead',
        in_channels=(128, 128),
        in_index=(0, 1),
        channels=256,
        num_classes=19,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        align_corners=False,
        loss_decode=dict(ohem_loss, loss_weight=1.0)),
    auxiliary_head=[
        dict(  # on s_3 (1/32)
            type='FCNHead',
            in_channels=128,
            in_index=1,
            channels=64,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.0,
            num_classes=19,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            align_corners=False,
            loss_decode=dict(ohem_loss, loss_weight=0.5)),
        dict(  # on s_4 (1/64)
            type='FCNHead',
            in_channels=128,
            in_index=2,
            channels=64,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.0,
            num_classes=19,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            align_corners=False,
            loss_decode=dict(ohem_loss, loss_weight=0.5)),
    ],
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
