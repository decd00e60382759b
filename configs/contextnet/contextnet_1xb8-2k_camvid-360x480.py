# ContextNet cn14 on CamVid (11 classes, 360x480 crops, batch 8): the Cityscapes optimiser
# (TensorFlow-style RMSprop `TFRMSprop`, lr 0.045, decay 0.9, momentum 0.9, eps 1, poly) for 2k
# iterations (~44 epochs), like the other 2k CamVid configs (the schedule is the project's choice).
_base_ = [
    '../_base_/models/contextnet.py', '../_base_/datasets/camvid.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (360, 480)
data_preprocessor = dict(size=crop_size, seg_pad_val=255)
model = dict(data_preprocessor=data_preprocessor, decode_head=dict(num_classes=11))
max_iters = 2000
optim_wrapper = dict(
    _delete_=True,  # drop the base's SGD keys
    type='OptimWrapper',
    optimizer=dict(type='TFRMSprop', lr=0.045, alpha=0.9, momentum=0.9, eps=1.0, weight_decay=4e-5),
    paramwise_cfg=dict(dwconv_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500))
