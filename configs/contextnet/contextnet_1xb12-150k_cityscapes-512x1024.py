# ContextNet cn14 on Cityscapes. Optimiser as described in the paper (TensorFlow RMSprop, decay 0.9,
# momentum 0.9, epsilon 1, base lr 0.045, MobileNetV2-style); batch 12; poly decay. The paper has
# no official code. `TFRMSprop` (rtkd.engine) is TensorFlow 1.x's RMSprop: epsilon under the square
# root, mean square started at 1 and the lr inside the momentum buffer; PyTorch's `RMSprop` with
# the same numbers adds epsilon outside the root (g / (sqrt(ms) + 1) instead of g / sqrt(ms + 1)),
# starts at 0 and scales by the lr after the buffer. The paper gives no iteration count we could
# verify: 150k iterations (~600 epochs at batch 12), the weight decay 4e-5 (MobileNetV2's, none on
# depthwise convs), the poly floor 1e-4 and mmseg's augmentation are the project's choice.
# Paper: 66.1 mIoU (test), 0.85 M params.
_base_ = [
    '../_base_/models/contextnet.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(batch_size=12)
max_iters = 150000
optim_wrapper = dict(
    _delete_=True,  # drop the base's SGD keys
    type='OptimWrapper',
    optimizer=dict(type='TFRMSprop', lr=0.045, alpha=0.9, momentum=0.9, eps=1.0, weight_decay=4e-5),
    paramwise_cfg=dict(dwconv_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
