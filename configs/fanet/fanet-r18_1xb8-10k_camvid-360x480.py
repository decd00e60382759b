# FANet-18 on CamVid (11 classes, 360x480). Optimisation as the official training code
# (github.com/feinanshan/FANet, Train/: SGD 0.01, momentum 0.9, weight decay 5e-4, geometric
# warm-up from 1e-5 over 1000 iterations, then poly 0.9; OHEM cross-entropy averaged over the kept
# pixels on all three outputs, auxiliary weight 0.5). The CamVid schedule (10k iterations x batch
# 8 ~ 218 epochs), the crop and mmseg's augmentation are the project's choice. Single-device
# config (BN).
_base_ = [
    '../_base_/models/fanet_r18.py', '../_base_/datasets/camvid.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_poly.py'
]
crop_size = (360, 480)
num_classes = 11
# official OhemCELoss2D: p_gt < 0.7, at least n_min = crop area / 16 per image, mean over kept
ohem_loss = dict(
    type='OhemCrossEntropyLoss', thresh=0.7, min_kept=crop_size[0] * crop_size[1] // 16)
data_preprocessor = dict(size=crop_size, seg_pad_val=255)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=num_classes, loss_decode=dict(ohem_loss, loss_weight=1.0)),
    auxiliary_head=[
        dict(
            type='FCNHead',
            in_channels=128,
            in_index=1,
            channels=64,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg={{_base_.norm_cfg}},
            act_cfg={{_base_.act_cfg}},
            align_corners=False,
            loss_decode=dict(ohem_loss, loss_weight=0.5)),
        dict(
            type='FCNHead',
            in_channels=128,
            in_index=2,
            channels=64,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg={{_base_.norm_cfg}},
            act_cfg={{_base_.act_cfg}},
            align_corners=False,
            loss_decode=dict(ohem_loss, loss_weight=0.5)),
    ])
max_iters = 10000
# The official AdaOptimizer: lr = 1e-5 * (lr0 / 1e-5) ** (it / 1000) for it <= 1000, then
# lr0 * (1 - (it - 1000) / (max_iters - 1000)) ** 0.9. ConstantLR (begin=0, end=1) starts the lr
# at 1e-5, ExponentialLR (end=warmup + 1) grows it to lr0, PolyLR (end=max_iters + 1) decays it:
# exactly those values at every iteration (tests/test_models/test_models_fanet.py checks it).
base_lr = 0.01
warmup_iters = 1000
warmup_start_lr = 1e-5
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=base_lr, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='ConstantLR', factor=warmup_start_lr / base_lr, by_epoch=False, begin=0, end=1),
    dict(
        type='ExponentialLR',
        gamma=(base_lr / warmup_start_lr)**(1 / warmup_iters),
        by_epoch=False,
        begin=0,
        end=warmup_iters + 1),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters + 1),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
