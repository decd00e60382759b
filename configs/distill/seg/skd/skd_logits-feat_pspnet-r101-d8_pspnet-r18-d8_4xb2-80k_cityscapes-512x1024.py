# SKD (Liu et al., CVPR 2019): pixel-wise KL (10) + pair-wise on classifier-input features (1,
# pooling scale 0.5) + holistic conditional WGAN-GP (0.1) with its own Adam critic optimiser.
# Teacher: mmseg PSPNet-R101-D8, Cityscapes val 79.76 mIoU (weights downloaded from OpenMMLab).
# Student: mmseg PSPNet-R18-D8 (74.87 mIoU alone; 4 GPUs x 2 images, SyncBN, 80k iterations); its own data and schedule (inherited below).
# Both logits are 1/8 of the crop (64 x 128). Run from the repo root.
_base_ = [
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../../../_base_/distill_runtime.py'
]
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='Distiller',
    student='configs/baselines/pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py',
    teacher=dict(
        config='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/pspnet_r101-'
        'd8_512x1024_80k_cityscapes/pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth'
    ),
    taps=dict(
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg',
        s_feat='student:decode_head.dropout#in',
        t_feat='teacher:decode_head.conv_seg#in'),
    losses=dict(
        loss_pi=dict(
            type='PixelWiseKD', tau=1.0, loss_weight=10.0, student='s_logits', teacher='t_logits'),
        loss_pa=dict(
            type='PairWiseKD', scale=0.5, loss_weight=1.0, student='s_feat', teacher='t_feat'),
        loss_hkd=dict(
            type='HolisticKD',
            num_classes=19,
            loss_weight=0.1,
            student='s_logits',
            teacher='t_logits')))
_student_optim_ = {{_base_.optim_wrapper}}
optim_wrapper = dict(
    _delete_=True,
    constructor='DistillOptimWrapperConstructor',
    student=_student_optim_,
    discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))))
custom_hooks = [dict(type='StudentCheckpointHook', interval=8000)]
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
