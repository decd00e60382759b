# NFD (Liu et al., arXiv 2207.05256): standardised classifier-input features, L2 (0.7), plus
# response KD on the logits (10), the paper weights; 1x1 conv + BN adapts 128 -> 512 channels.
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
        s_feat='student:decode_head.dropout#in',
        t_feat='teacher:decode_head.conv_seg#in',
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg'),
    connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=128, out_channels=512)),
    # seed advice: the student's ImageNet-pretrained backbone stays still while the new
    # connector and heads settle under the large early feature-distillation gradients
    freeze_student=dict(modules=['backbone'], iters=1000),
    losses=dict(
        loss_nfd=dict(type='NFDLoss', loss_weight=0.7, student='s_feat', teacher='t_feat'),
        loss_kd=dict(
            type='PixelWiseKD', tau=1.0, loss_weight=10.0, student='s_logits', teacher='t_logits')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=8000)]
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
