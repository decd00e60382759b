# ESPNet (p=2, q=8) on Cityscapes with the official code's recipe: Adam (lr 5e-4, weight decay
# 5e-4), batch 12, 300 epochs (2975 / 12 * 300 ~ 75k iterations), lr halved every 100 epochs.
# The official code weights classes by w_c = 1 / ln(1.10 + p_c) (p_c: training pixel frequency);
# set loss_decode.class_weight to those 19 values computed on your copy of Cityscapes
# (see espnet_2k_camvid-360x480.py for CamVid's). Paper: 60.3 mIoU (test), 0.364 M params.
_base_ = [
    '../_base_/models/espnet.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(batch_size=12)
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
