# mmseg's stock BiSeNetV2 (BN, aux heads) on CamVid with 240x320 crops: the recipe of the shared
# CamVid teacher (../shared/teachers/README.md, val mIoU 53.22 after 1800 iterations), on rtkd's
# CamVidDataset (void -> 255). The main job trains it when no teacher checkpoint is given.
# One difference: every CE here averages over non-ignored pixels (avg_non_ignore=True, as in
# all rtkd configs); the shared weights were trained with mmseg's default (all pixels).
_base_ = [
    'mmseg::_base_/models/bisenetv2.py', '../_base_/datasets/camvid.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
norm_cfg = dict(type='BN', requires_grad=True)
crop_size = (240, 320)
num_classes = 11
model = dict(
    data_preprocessor=dict(size=crop_size, seg_pad_val=255),
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(
        num_classes=num_classes, norm_cfg=norm_cfg, loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=[
        dict(
            type='FCNHead',
            in_channels=c,
            channels=ch,
            num_convs=n,
            num_classes=num_classes,
            in_index=i,
            norm_cfg=norm_cfg,
            concat_input=False,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True, loss_weight=1.0))
        for c, ch, n, i in ((16, 16, 2, 1), (32, 64, 2, 2), (64, 256, 2, 3), (128, 1024, 2, 4))
    ])
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(480, 360), ratio_range=(0.5, 1.5), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]))
max_iters = 1800
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=600)
default_hooks = dict(checkpoint=dict(interval=600))
