# CWD (Shu et al., ICCV 2021) on the logits, tau 4, weight 3 (the paper / MMRazor setting).
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
    taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
    losses=dict(
        loss_cwd=dict(
            type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_logits',
            teacher='t_logits')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=8000)]
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
