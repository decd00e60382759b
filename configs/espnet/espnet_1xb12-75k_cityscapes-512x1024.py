# ESPNet (p=2, q=8) on Cityscapes. Paper: 60.3 mIoU (test), 0.364 M params.
# From the official code (github.com/sacmehta/ESPNet, train/main.py and train/loadData.py):
# Adam (lr 5e-4, betas (0.9, 0.999), eps 1e-8, weight decay 5e-4), lr halved every 100 of 300
# epochs, class-weighted cross-entropy w_c = 1 / ln(1.10 + p_c) (p_c: pixel frequency of class c
# in the train labels), images and labels resized to 1024x512 (bilinear / nearest) for training
# (its main loader, with flips) and for testing.
# Class weights: the official code computes them when it runs and publishes none. The values below
# are ERFNet's published Cityscapes decoder weights (github.com/Eromera/erfnet_pytorch,
# train/main.py), made by the Torch ERFNet code (github.com/Eromera/erfnet,
# train/model/loss_general.lua, normvalue 1.10 in train/model/decoder.lua) with the same formula
# and constant over the 1024x512 train labels, void pixels included in the total as ESPNet counts
# them. Your own, from your copy of Cityscapes:
#   python tools/dataset_converters/class_weights.py \
#       configs/espnet/espnet_1xb12-75k_cityscapes-512x1024.py --method espnet --count-ignored
# The project's choices: (1) the official "epoch" is five passes over the train set, at 1536x768,
# 1280x720, 512x256, 768x384 and 1024x512 (flips, and random crop-and-resize-back of up to 100 or
# 32 pixels per side); here only the 1024x512 scale with flips, 75k iterations x batch 12 ~ 302
# passes (the official's 300 main-scale passes, at batch 12 + 2); (2) end-to-end training (the
# official code trains the ESPNet-C encoder first, then the decoder on it); (3) void is ignored
# (the official code trains it as a 20th class); (4) ImageNet mean/std (official: the train set's);
# (5) mmseg evaluates the predictions resized back to the full-resolution labels (the official
# code validates at 1024x512).
_base_ = [
    '../_base_/models/espnet.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
img_scale = (1024, 512)  # (w, h), whole images, no crop
class_weight = [
    2.8149, 6.9850, 3.7890, 9.9428, 9.7702, 9.5111, 10.3114, 10.0265, 4.6323, 9.5608, 7.8698,
    9.5169, 10.3737, 6.6616, 10.2605, 10.2879, 10.2898, 10.4054, 10.1381
]
data_preprocessor = dict(size=(img_scale[1], img_scale[0]))
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        # weighted mean over non-ignored pixels: sum_p w_y(p) CE(p) / sum_p w_y(p) (as torch);
        # rtkd.compat fixes mmseg 1.2.2's crash of this path on ignored (255) pixels.
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            avg_non_ignore=True,
            loss_weight=1.0,
            class_weight=class_weight)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=12, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
max_iters = 75000
optim_wrapper = dict(
    _delete_=True,  # drop the base's SGD keys
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4))
param_scheduler = [
    dict(type='MultiStepLR', milestones=[25000, 50000], gamma=0.5, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
default_hooks = dict(checkpoint=dict(interval=5000))
