# CWD (Shu et al., ICCV 2021) on the logits for the converged CamVid benchmark: the BiSeNetV2
# teacher continued to 3000 iterations (val 59.07) -> the project's Fast-SCNN with its 6k-iteration,
# 240x320-crop recipe (configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py, the baseline).
# tau 4, loss weight 3: the authors' TorchDistiller setting for logits (MMRazor's recipe uses
# tau 1, weight 5). Both logits are 1/8 of the input (30 x 40 for 240x320 crops).
# Live teacher (~3.5x the student step on CPU); the *_geo-cache.py sibling reads a teacher cache.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
    '../../../_base_/teachers/bisenetv2-ft3000_camvid-240x320.py',
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
