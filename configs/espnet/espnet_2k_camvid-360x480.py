# ESPNet (p=2, q=8) on CamVid (11 classes, 360x480 crops, batch 8): Adam 5e-4 / weight decay 5e-4,
# lr halved at 1/3 and 2/3 of the run (official step schedule), 2k iterations (~44 epochs).
# Class weights as in the official code, w_c = 1 / ln(1.10 + p_c), p_c = pixel frequency of class c
# over the 367 CamVid training labels (void excluded), computed on /work/shared/data/camvid.
_base_ = [
    '../_base_/models/espnet.py', '../_base_/datasets/camvid.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (360, 480)
data_preprocessor = dict(size=crop_size, seg_pad_val=255)
class_weight = [4.1112, 3.3982, 9.563, 2.798, 7.3049, 5.454, 9.4029, 9.4412, 6.6961, 9.8676,
                10.1971]
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        num_classes=11,
        # weighted mean over non-ignored pixels: sum_p w_y(p) CE(p) / sum_p w_y(p) (as torch);
        # rtkd.compat fixes mmseg 1.2.2's crash of this path on ignored (255) pixels.
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
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
