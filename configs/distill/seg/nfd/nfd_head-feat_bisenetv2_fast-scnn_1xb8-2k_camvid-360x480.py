# NFD, "Normalized Feature Distillation for Semantic Segmentation" (Liu et al., arXiv 2207.05256):
# the features entering the classifier, each standardised with its own per-channel statistics,
# compared with L2 (student 128 ch -> teacher 1024 ch through a 1x1 conv + BN connector), plus
# response KD on the logits; paper weights KD 10, NFD 0.7.
# BiSeNetV2 (shared CamVid teacher) -> the project's Fast-SCNN, CamVid 360x480, 2k iterations.
# The student tap is the dropout's input, so the student's training-time dropout is not distilled.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py',
    '../../../_base_/teachers/bisenetv2_camvid-240x320.py', '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},  # the student config of _base_
    teacher={{_base_.teacher}},
    taps=dict(
        s_feat='student:decode_head.dropout#in',
        t_feat='teacher:decode_head.conv_seg#in',
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg'),
    connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=128, out_channels=1024)),
    losses=dict(
        loss_nfd=dict(type='NFDLoss', loss_weight=0.7, student='s_feat', teacher='t_feat'),
        loss_kd=dict(
            type='PixelWiseKD', tau=1.0, loss_weight=10.0, student='s_logits', teacher='t_logits')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=500)]
