# FANet-18 on Cityscapes. Optimisation and loss as the official training code
# (github.com/feinanshan/FANet, Train/; its only shipped config, FA_Res18_CCRI.yml, is for the
# CCRI dataset): SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 16, 40k iterations, geometric
# warm-up from 1e-5 over 1000 iterations then poly 0.9, OHEM cross-entropy (OhemCELoss2D: pixels
# with p_gt < 0.7, at least 1/16 of the crop per image, averaged over the kept pixels) on the main
# and both auxiliary outputs (auxiliary weight 0.5). The 512x1024 crop and mmseg's Cityscapes
# augmentation are the project's choice (the official CCRI recipe: 384x384 crops, scale 0.5-2,
# rotation, colour jitter, flip).
# Single-device config (BN, batch 16). For N GPUs use batch_size=16//N and norm_cfg SyncBN.
_base_ = [
    '../_base_/models/fanet_r18.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (512, 1024)
num_classes = 19
# per image, as the official n_min (= images per GPU x crop area / 16 for the batch)
ohem_loss = dict(
    type='OhemCrossEntropyLoss', thresh=0.7, min_kept=crop_size[0] * crop_size[1] // 16)
data_preprocessor = dict(size=crop_size)
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
train_dataloader = dict(batch_size=16)
max_iters = 40000
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
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
