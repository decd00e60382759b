# Fast-SCNN on CamVid (11 classes, 360x480 crops, batch 8): the paper's optimiser (SGD 0.045,
# momentum 0.9, l2 4e-5 except depthwise convs, poly 0.9) and auxiliary losses; 2k iterations
# (~44 epochs), the same schedule as configs/baselines/mmseg-fast-scnn_1xb8-2k_camvid-360x480.py.
_base_ = [
    '../_base_/models/fast_scnn.py', '../_base_/datasets/camvid.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_poly.py'
]
crop_size = (360, 480)
num_classes = 11
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size, seg_pad_val=255)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=[  # lists replace the base's list: repeat the whole head definitions
        dict(
            type='FCNHead',
            in_channels=64,
            channels=32,
            num_convs=1,
            num_classes=num_classes,
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
            num_classes=num_classes,
            in_index=1,
            norm_cfg=norm_cfg,
            concat_input=False,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True, loss_weight=0.4)),
    ])
max_iters = 2000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.045, momentum=0.9, weight_decay=4e-5),
    paramwise_cfg=dict(dwconv_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500))
