# CWD (Shu et al., ICCV 2021) on the logits: BiSeNetV2 teacher (CamVid val 53.2 mIoU, the shared
# teacher) -> the project's Fast-SCNN, CamVid 360x480, the student's own 2k-iteration recipe.
# Paper setting on logits: tau 4, loss weight 3. Both logits are 1/8 of the input (45 x 60).
# Run from the repo root: mim train mmseg configs/distill/seg/cwd/<this file>
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py',
    '../../../_base_/teachers/bisenetv2_camvid-240x320.py', '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='Distiller',
    student='configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py',
    teacher={{_base_.teacher}},
    taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
    losses=dict(
        loss_cwd=dict(
            type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_logits',
            teacher='t_logits')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=500)]
