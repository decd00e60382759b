# CWD (Shu et al., ICCV 2021) on the logits, CamVid BiSeNetV2 teacher
# (_base_/teachers/bisenetv2_camvid-240x320.py) ->
# the mmpretrain-MobileNetV2 student of this folder. Student logits are at 1/4, the teacher's at
# 1/8: a parameter-free ResizeConnector brings the student logits to the teacher's size.
# The student's ImageNet-pretrained backbone is frozen for the first 200 iterations, so early
# distillation gradients do not wreck the pretraining. tau 4, weight 3 (paper setting on logits).
# Run from the repo root: mim train mmseg configs/distill/seg/mmpretrain_student/<this file>
_base_ = [
    './mmpretrain-mobilenetv2-segformer-head_1xb8-2k_camvid-360x480.py',
    '../../../_base_/teachers/bisenetv2_camvid-240x320.py', '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='Distiller',
    student='configs/distill/seg/mmpretrain_student/'
    'mmpretrain-mobilenetv2-segformer-head_1xb8-2k_camvid-360x480.py',
    teacher={{_base_.teacher}},
    taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
    connectors=dict(s_logits=dict(type='ResizeConnector', like='t_logits')),
    losses=dict(
        loss_cwd=dict(
            type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_logits',
            teacher='t_logits')),
    freeze_student=dict(modules=['backbone'], iters=200))
custom_hooks = [dict(type='StudentCheckpointHook', interval=500)]
