# NFD (Liu et al., arXiv 2207.05256): standardised classifier-input features, L2 (0.7), plus
# response KD on the logits (10), the paper weights; 1x1 conv + BN adapts 128 -> 512 channels.
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
        s_feat='student:decode_head.dropout#in',
        t_feat='teacher:decode_head.conv_seg#in',
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg'),
    connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=128, out_channels=512)),
    losses=dict(
        loss_nfd=dict(type='NFDLoss', loss_weight=0.7, student='s_feat', teacher='t_feat'),
        loss_kd=dict(
            type='PixelWiseKD', tau=1.0, loss_weight=10.0, student='s_logits', teacher='t_logits')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=8000)]
