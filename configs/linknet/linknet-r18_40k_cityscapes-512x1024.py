# LinkNet (ResNet-18) on Cityscapes with the official recipe (github.com/e-lab/LinkNet):
# whole images resized to 1024x512 (no cropping), batch 8, RMSProp (alpha 0.99, eps 1e-8) with a
# constant learning rate of 5e-4 and no weight decay (the code decays it by 1e-7 after 100 epochs,
# i.e. training effectively stops there: 100 epochs x 372 iterations ~ 40k iterations), and
# class-weighted cross-entropy (ENet-style weights 1/ln(c + p_class); the values below are the
# Cityscapes weights published with ERFNet). Single-device config (BN).
_base_ = [
    '../_base_/models/linknet_r18.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
img_scale = (1024, 512)  # (w, h)
num_classes = 19
class_weight = [
    2.8149, 6.9850, 3.7890, 9.9428, 9.7702, 9.5111, 10.3114, 10.0265, 4.6323, 9.5608, 7.8698,
    9.5169, 10.3737, 6.6616, 10.2605, 10.2879, 10.2898, 10.4054, 10.1381
]
data_preprocessor = dict(size=(img_scale[1], img_scale[0]))
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        num_classes=num_classes,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         class_weight=class_weight)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
max_iters = 40000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='RMSprop', lr=5e-4, alpha=0.99, eps=1e-8,
                   weight_decay=0.0))
param_scheduler = [
    dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
