# ContextNet cn14 on CamVid for the converged benchmark, the second network beside Fast-SCNN: the
# project's CamVid recipe (contextnet_1xb8-2k_camvid-360x480.py: TensorFlow-style RMSprop, lr
# 0.045, poly 0.9) with the converged benchmark's data and budget, as
# configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py: 240x320 training crops (recorded, so a
# teacher cache can replay them), batch 8, 6000 iterations, val on the whole 360x480 val images
# every 400 iterations. Seed 0 unless --cfg-options randomness.seed=N.
#   python tools/train.py configs/contextnet/contextnet_1xb8-6k_camvid-240x320.py --work-dir W
_base_ = ['./contextnet_1xb8-2k_camvid-360x480.py']
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
