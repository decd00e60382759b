# Knowledge adaptation (He et al., CVPR 2019), stage 1 of 2: an auto-encoder learns to reconstruct
# the frozen teacher's last feature map (the 1024-channel input of BiSeNetV2's classifier, 1/8 of
# the input: 30 x 40 for 240x320 crops). Loss: mean squared error + 1e-7 x l1 of the code (the
# paper's alpha; both terms divided by the feature size). Paper: SGD lr 0.1, weight decay 1e-4,
# "within one epoch"; here 300 iterations (~6.5 epochs of the 367 CamVid training images,
# batch 8, the stage-2 data recipe), poly decay. No validation (val_cfg=None): the logged loss_rec
# is the reconstruction error. Its checkpoint holds the auto-encoder only (+ tap/teacher meta):
#   python tools/train.py configs/distill/seg/ka/ka-stage1_head-feat_bisenetv2-ft3000_1xb8-300_camvid-240x320.py
#   -> work_dirs/ka-stage1_head-feat_bisenetv2-ft3000_1xb8-300_camvid-240x320/iter_300.pth,
#      named by the stage-2 recipe ka_head-feat_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py
# Measured: ~3.3 s/iteration (5 iterations, OMP_NUM_THREADS=1, nice 10, 2 dataloader workers,
# beside another training on this 2-core CPU; load average ~6), so ~17 min for 300 iterations.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
    '../../../_base_/teachers/bisenetv2-ft3000_camvid-240x320.py'
]
model = dict(
    _delete_=True,
    type='KATeacherAutoEncoder',
    teacher={{_base_.teacher}},
    tap='teacher:decode_head.conv_seg#in',
    # three 3x3 convs, one stride-2 (the code is 15 x 20 x 128), mirrored by transposed convs
    autoencoder=dict(channels=(256, 256, 128), strides=(2, 1, 1)),
    loss=dict(type='KAReconstructionLoss', reg_weight=1e-7))
max_iters = 300
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_last=True), logger=dict(interval=10))
