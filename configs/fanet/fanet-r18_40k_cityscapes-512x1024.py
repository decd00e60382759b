# FANet-18 on Cityscapes, the official training recipe (github.com/feinanshan/FANet, Train/):
# SGD lr 0.01, momentum 0.9, weight decay 5e-4, 1000-iteration linear warm-up from 1e-5, poly 0.9,
# 40k iterations, batch 16, OHEM cross-entropy (keep pixels with p_gt < 0.7, at least 1/16 of the
# crop per image) on the main and both auxiliary outputs (auxiliary weight 0.5).
# Single-device config (BN, batch 16). For N GPUs use batch_size=16//N and norm_cfg SyncBN.
_base_ = [
    '../_base_/models/fanet_r18.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (512, 1024)
num_classes = 19
min_kept = crop_size[0] * crop_size[1] // 16  # per image, as the official n_min
ohem = dict(type='OHEMPixelSampler', thresh=0.7, min_kept=min_kept)
data_preprocessor = dict(size=crop_size)
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
train_dataloader = dict(batch_size=16)
max_iters = 40000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=1000, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
