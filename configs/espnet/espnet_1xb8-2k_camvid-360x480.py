# ESPNet (p=2, q=8) on CamVid (11 classes, 360x480 crops, batch 8): Adam 5e-4 / weight decay 5e-4,
# lr halved at 1/3 and 2/3 of the run (the official Cityscapes step schedule, scaled), 2k
# iterations (~44 epochs; the length and mmseg's CamVid augmentation are the project's choice).
# Class weights with the official code's formula, w_c = 1 / ln(1.10 + p_c), p_c = pixel frequency
# of class c over the 367 CamVid train labels, made by
#   python tools/dataset_converters/class_weights.py configs/espnet/espnet_1xb8-2k_camvid-360x480.py \
#       --method espnet
# Void is left out of the total (the project's choice; the official code, written for Cityscapes,
# counts void as an extra class: --count-ignored gives 4.2053, 3.4828, 9.5964, 2.8715, 7.3918,
# 5.5550, 9.4414, 9.4785, 6.7906, 9.8908, 10.2084).
_base_ = [
    '../_base_/models/espnet.py', '../_base_/datasets/camvid.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_poly.py'
]
crop_size = (360, 480)
data_preprocessor = dict(size=crop_size, seg_pad_val=255)
class_weight = [
    4.1112, 3.3982, 9.563, 2.798, 7.3049, 5.454, 9.4029, 9.4412, 6.6961, 9.8676, 10.1971
]
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        num_classes=11,
        # weighted mean over non-ignored pixels: sum_p w_y(p) CE(p) / sum_p w_y(p) (as torch);
        # rtkd.compat fixes mmseg 1.2.2's crash of this path on ignored (255) pixels.
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            avg_non_ignore=True,
            loss_weight=1.0,
            class_weight=class_weight)))
max_iters = 2000
optim_wrapper = dict(
    _delete_=True,  # drop the base's SGD keys
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4))
param_scheduler = [
    dict(type='MultiStepLR', milestones=[667, 1333], gamma=0.5, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500))
