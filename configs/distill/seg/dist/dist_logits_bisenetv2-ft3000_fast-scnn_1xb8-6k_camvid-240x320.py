# DIST (Huang et al., NeurIPS 2022) on the logits for the converged CamVid benchmark: the
# BiSeNetV2 teacher continued to 3000 iterations (val 59.07) -> the project's Fast-SCNN with its
# 6k-iteration, 240x320-crop recipe (configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py, the
# baseline). Settings of the official segmentation code (hunto/DIST_KD, segmentation/): no
# temperature (tau 1), beta = gamma = 1, loss weight 1, on the logits at their own resolution
# (1/8 of the input: 30 x 40 for 240x320 crops), the pixels of the whole batch as rows. The
# official 0.4 x DIST on the auxiliary head is left out (the teacher's aux heads do not match
# the student's).
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
        loss_dist=dict(
            type='DISTLoss',
            tau=1.0,
            beta=1.0,
            gamma=1.0,
            loss_weight=1.0,
            student='s_logits',
            teacher='t_logits')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=400)]
