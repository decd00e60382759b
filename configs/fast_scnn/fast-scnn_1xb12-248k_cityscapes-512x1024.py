# Fast-SCNN on Cityscapes with the paper's recipe (Sec. 4.1): SGD momentum 0.9, batch 12, poly
# (power 0.9) from lr 0.045, l2 4e-5 except on depthwise convs, 1000 epochs (2975 / 12 * 1000 =
# 248k iterations), random resize 0.5-2.0 / crop / flip / colour jitter, auxiliary losses 0.4.
# Paper: 68.0 mIoU (test), 69.1 (val), 1.11 M params.
_base_ = [
    '../_base_/models/fast_scnn.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(batch_size=12)
max_iters = 248000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.045, momentum=0.9, weight_decay=4e-5),
    paramwise_cfg=dict(dwconv_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
