# The continuation that made the shared "ft3000" CamVid teacher, as an in-repo config: start from
# the 1800-iteration BiSeNetV2 (configs/baselines/bisenetv2_1xb8-1800_camvid-240x320.py), a second
# warm-up (100 iterations) + poly schedule of 1200 iterations with the same data recipe, seed 0,
# fresh auxiliary heads; keeps the best val checkpoint (3000 iterations of training in all).
# The shared ../shared/teachers/bisenetv2_camvid-240x320_ft3000.py did the same on mmseg's
# BaseSegDataset (void = 11, CE averaged over all pixels); this one runs on rtkd's CamVidDataset
# (void -> 255, CE averaged over non-ignored pixels), so its weights are not bit-identical.
#   python tools/train.py configs/baselines/bisenetv2_1xb8-ft1200_camvid-240x320.py \
#       --work-dir work_dirs/teacher_ft1200 --cfg-options load_from=work_dirs/teacher_1800/iter_1800.pth
# (without load_from: $RTKD_TEACHERS/bisenetv2_camvid-240x320.pth, default ../shared/teachers).
_base_ = ['./bisenetv2_1xb8-1800_camvid-240x320.py']
load_from = '{{$RTKD_TEACHERS:../shared/teachers}}/bisenetv2_camvid-240x320.pth'
max_iters = 1200
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=400)
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=400,
        max_keep_ckpts=1,
        save_best='mIoU',
        save_last=True))
randomness = dict(seed=0)
