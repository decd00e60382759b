# A stronger CamVid teacher for the converged distillation benchmark: the shared BiSeNetV2 after
# 3000 iterations (../shared/teachers/bisenetv2_camvid-240x320_ft3000.pth, val 59.07, still
# improving) continued with a third warm-up + poly schedule of 4000 iterations, same data recipe
# (240x320 crops of images rescaled 0.5-1.5x, batch 8, SGD 0.05), fresh auxiliary heads; keeps the
# best val checkpoint. ~1.7 s/iteration on this machine's 2 CPU cores with the CPU to itself
# (~2 h; 3-5 s while other work shares it): run it in the background and --resume it after an
# interruption:
#   python tools/train.py configs/baselines/bisenetv2_1xb8-ft4k_camvid-240x320.py \
#       --work-dir work_dirs/teacher_ft4k [--resume]   (../shared is read-only)
# The ft1200 continuation's recipe (checkpoints, seed) with a longer schedule and other weights.
_base_ = ['./bisenetv2_1xb8-ft1200_camvid-240x320.py']
load_from = '{{$RTKD_TEACHERS:../shared/teachers}}/bisenetv2_camvid-240x320_ft3000.pth'
max_iters = 4000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=100, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2))
