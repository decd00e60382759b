# BYOT self-distillation (Zhang et al., "Be Your Own Teacher", ICCV 2019) for the project's
# Fast-SCNN on CamVid, with the budget of its converged baseline
# (configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py: 240x320 crops, batch 8, 6000 iterations).
# No teacher: the student teaches itself. Its two mmseg auxiliary heads (FCNHead on the end of
# learning-to-downsample, 64 ch at 1/8, and of the global feature extractor, 128 ch at 1/32; CE
# 0.4 each, as in the baseline) are BYOT's shallow classifiers; the final head is the deepest one:
#   * KD: per-pixel KL(softmax(z_final / T) || softmax(z_aux / T)) T^2, T = 3, weight alpha = 0.1
#     (PixelWiseKD; the 1/32 aux logits are upsampled to the final head's 1/8 first);
#   * hint: MSE between a 1x1 conv + BN of the aux head's 32-ch feature (its 3x3 conv output) and
#     the deepest feature (the final head's 128-ch input to its classifier, before dropout),
#     weight lambda = 1.0 (FitNetsLoss + ConvBNConnector; the 1/32 one resized to 1/8).
# The final logits and the deepest feature are student taps used as teacher=: the Distiller
# detaches them, so no distillation gradient reaches the final head (as the BYOT code's .detach()).
# Exported student (student_latest.pth, extract_student.py): the plain Fast-SCNN keys (aux heads
# included, which the plain config has and never runs at inference); the connectors are dropped.
# Deviations from BYOT (paper / github luanyunteng/pytorch-be-your-own-teacher, itself a
# re-implementation): dense per-pixel terms instead of pooled vectors; CE weights are the
# baseline's (1.0 final, 0.4 aux) instead of (1 - alpha) for every head; KL instead of the code's
# soft-target CE (same gradient); hint: plain MSE over all elements after a learned 1x1 connector
# (the code: squared error summed, masked to where either feature is > 0, beta 1e-6 - about 1.2x
# our mean at 8x128x30x40 elements), the shallow classifier reads the 32-ch feature, not the
# connector's output; 2 shallow heads (the sections of Fast-SCNN) instead of 3. alpha, T from the
# code's defaults; lambda chosen for the mean form, not tuned.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py', '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},  # the student config of _base_
    taps=dict(
        t_logits='student:decode_head.conv_seg',
        t_feat='student:decode_head.convs',
        s_logits0='student:auxiliary_head.0.conv_seg',
        s_feat0='student:auxiliary_head.0.convs',
        s_logits1='student:auxiliary_head.1.conv_seg',
        s_feat1='student:auxiliary_head.1.convs'),
    connectors=dict(
        s_logits1=dict(type='ResizeConnector', like='t_logits'),
        s_feat0=dict(type='ConvBNConnector', in_channels=32, out_channels=128),
        s_feat1=[
            dict(type='ConvBNConnector', in_channels=32, out_channels=128),
            dict(type='ResizeConnector', like='t_feat')
        ]),
    losses=dict(
        loss_kd0=dict(
            type='PixelWiseKD', tau=3.0, loss_weight=0.1, student='s_logits0', teacher='t_logits'),
        loss_kd1=dict(
            type='PixelWiseKD', tau=3.0, loss_weight=0.1, student='s_logits1', teacher='t_logits'),
        loss_hint0=dict(type='FitNetsLoss', loss_weight=1.0, student='s_feat0', teacher='t_feat'),
        loss_hint1=dict(type='FitNetsLoss', loss_weight=1.0, student='s_feat1', teacher='t_feat')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=400)]
