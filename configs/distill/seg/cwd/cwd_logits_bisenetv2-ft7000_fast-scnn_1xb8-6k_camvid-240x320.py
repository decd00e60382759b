# CWD on the logits for the converged CamVid benchmark with the strongest teacher: BiSeNetV2
# continued to 7000 iterations (configs/_base_/teachers/bisenetv2-ft7000_camvid-240x320.py) ->
# the project's Fast-SCNN 6k baseline recipe. Same loss as the ft3000 recipe (tau 4, weight 3,
# TorchDistiller's logits setting). Live teacher (~3.5x the student step on CPU); the
# *_geo-cache.py sibling reads a teacher cache at ~1.03x.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
    '../../../_base_/teachers/bisenetv2-ft7000_camvid-240x320.py',
    '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='Distiller',
    student='configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
    teacher={{_base_.teacher}},
    taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
    losses=dict(
        loss_cwd=dict(
            type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_logits',
            teacher='t_logits')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=400)]
