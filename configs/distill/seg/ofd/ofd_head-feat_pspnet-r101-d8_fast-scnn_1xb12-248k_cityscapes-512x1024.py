# OFD (Heo et al., ICCV 2019): margin-ReLU'd teacher pre-ReLU feature (PSP bottleneck BN, 512 ch)
# vs the student's pre-ReLU feature through 1x1 conv + BN; partial L2. The official segmentation
# code's settings (see ofd_head-feat_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py for each source):
# sum / batch x 1e-5 / 16 (the decoder feature's divider), connector init normal(0, sqrt(2/out)),
# connectors at 10x lr, first epoch (2975 images / batch 12 = 248 iterations) connectors only.
# Teacher: mmseg PSPNet-R101-D8, Cityscapes val 79.76 mIoU (weights downloaded from OpenMMLab).
# Student: the project's Fast-SCNN (paper recipe: batch 12, 248k iterations); its own data and schedule (inherited below).
# Both logits are 1/8 of the crop (64 x 128). Run from the repo root.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb12-248k_cityscapes-512x1024.py',
    '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},  # the student config of _base_
    teacher=dict(
        config='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/pspnet_r101-'
        'd8_512x1024_80k_cityscapes/pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth'
    ),
    taps=dict(
        s_feat='student:decode_head.convs.1.pointwise_conv.bn',
        t_feat='teacher:decode_head.bottleneck.bn'),
    connectors=dict(
        s_feat=dict(
            type='ConvBNConnector', in_channels=128, out_channels=512, init='kaiming_fan_out')),
    losses=dict(
        loss_ofd=dict(
            type='OFDLoss',
            teacher_bn='decode_head.bottleneck.bn',
            loss_weight=1e-5 / 16,
            student='s_feat',
            teacher='t_feat')),
    freeze_student=dict(modules=[''], iters=248, norm_eval=False))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'connectors': dict(lr_mult=10.0)}))
custom_hooks = [dict(type='StudentCheckpointHook', interval=8000)]
