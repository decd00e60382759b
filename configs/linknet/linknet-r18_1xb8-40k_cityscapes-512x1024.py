# LinkNet (ResNet-18) on Cityscapes. From the official code (github.com/e-lab/LinkNet): whole
# images resized to 1024x512 (no cropping, labels nearest-neighbour), batch 8, RMSProp (Torch7
# optim.rmsprop: alpha 0.99, eps 1e-8 outside the square root as in PyTorch, no momentum) with a
# constant learning rate of 5e-4 and no weight decay (the code multiplies the lr by 1e-7 after 100
# epochs, i.e. training effectively stops there: 100 epochs x 371 iterations ~ 40k iterations), and
# cross-entropy weighted by w_c = 1 / ln(1.02 + h_c / max_k h_k) (models/model.lua; h: the class
# histogram of the 1024x512 train labels).
# Class weights: LinkNet publishes none and there is no Cityscapes copy here. The values below are
# LinkNet's formula applied to the class frequencies that ERFNet's published Cityscapes weights
# encode (github.com/Eromera/erfnet_pytorch, train/main.py: w = 1 / ln(1.10 + p) over the same
# 1024x512 nearest-resized train labels, so p_c = exp(1 / w_c) - 1.10 and
# h_c / max h = p_c / p_road; road is the largest class, void included). Your own, from your copy
# of Cityscapes:
#   python tools/dataset_converters/class_weights.py \
#       configs/linknet/linknet-r18_1xb8-40k_cityscapes-512x1024.py --method linknet
# The project's choices: horizontal flips (the official code has no augmentation), ImageNet
# mean/std (official: train-set mean subtraction only), void ignored (official: an "Unlabeled"
# class that is trained with its own weight). Single-device config (BN).
_base_ = [
    '../_base_/models/linknet_r18.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
img_scale = (1024, 512)  # (w, h)
num_classes = 19
class_weight = [
    1.4223, 5.8877, 2.0247, 26.9638, 23.3247, 19.2651, 39.5127, 29.1156, 2.6831, 19.9440, 8.2601,
    19.3420, 42.7558, 5.2513, 37.1896, 38.4084, 38.4962, 44.5968, 32.5194
]
data_preprocessor = dict(size=(img_scale[1], img_scale[0]))
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        num_classes=num_classes,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            avg_non_ignore=True,
            loss_weight=1.0,
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
    optimizer=dict(_delete_=True, type='RMSprop', lr=5e-4, alpha=0.99, eps=1e-8, weight_decay=0.0))
param_scheduler = [
    dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
