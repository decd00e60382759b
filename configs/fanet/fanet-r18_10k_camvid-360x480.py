# FANet-18 on CamVid (11 classes, 360x480): the official optimisation recipe (SGD 0.01, warm-up,
# poly, OHEM on all three outputs, auxiliary weight 0.5) with a CamVid-sized schedule
# (10k iterations x batch 8 ~ 218 epochs). Single-device config (BN).
_base_ = [
    '../_base_/models/fanet_r18.py', '../_base_/datasets/camvid.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (360, 480)
num_classes = 11
ohem = dict(type='OHEMPixelSampler', thresh=0.7, min_kept=crop_size[0] * crop_size[1] // 16)
data_preprocessor = dict(size=crop_size, seg_pad_val=255)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=num_classes, sampler=ohem),
    auxiliary_head=[
        dict(type='FCNHead', in_channels=128, in_index=1, channels=64, num_convs=1,
             concat_input=False, dropout_ratio=0.0, num_classes=num_classes,
             norm_cfg={{_base_.norm_cfg}}, act_cfg={{_base_.act_cfg}}, align_corners=False,
             sampler=ohem,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.5)),
        dict(type='FCNHead', in_channels=128, in_index=2, channels=64, num_convs=1,
             concat_input=False, dropout_ratio=0.0, num_classes=num_classes,
             norm_cfg={{_base_.norm_cfg}}, act_cfg={{_base_.act_cfg}}, align_corners=False,
             sampler=ohem,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.5)),
    ])
max_iters = 10000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=1000, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
