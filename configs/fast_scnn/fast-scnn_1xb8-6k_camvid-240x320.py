# Fast-SCNN on CamVid for the converged distillation benchmark: the project's CamVid recipe
# (fast-scnn_1xb8-2k_camvid-360x480.py: the paper's SGD 0.045 / poly 0.9, aux losses 0.4, softmax CE
# averaged over non-ignored pixels) with 240x320 training crops (the shared teacher's crop size,
# ~2.2x cheaper on CPU than 360x480), batch 8 on one device, 6000 iterations (~131 epochs of the
# 367 training images), validated on the whole 360x480 val images every 400 iterations so the
# learning curve shows where it stops improving. Seed 0 unless --cfg-options randomness.seed=N.
#   python tools/train.py configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py \
#       --work-dir W [--resume]
_base_ = ['./fast-scnn_1xb8-2k_camvid-360x480.py']
crop_size = (240, 320)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(480, 360), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RecordedRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs', meta_keys={{_base_.geometry_meta_keys}}),
    ]))
max_iters = 6000
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=400)
default_hooks = dict(
    checkpoint=dict(interval=400, max_keep_ckpts=2, save_last=True), logger=dict(interval=20))
randomness = dict(seed=0)
