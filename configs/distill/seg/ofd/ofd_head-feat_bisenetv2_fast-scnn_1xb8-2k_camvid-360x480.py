# OFD, "A Comprehensive Overhaul of Feature Distillation" (Heo et al., ICCV 2019): the teacher's
# pre-ReLU feature (the BN output of BiSeNetV2's decode-head conv, 1024 ch) through the margin
# ReLU (margins from that BN's statistics), the student's pre-ReLU feature (BN output of the last
# Fast-SCNN classifier DSConv, 128 ch) through a 1x1 conv + BN connector, partial L2.
# As the official segmentation code (clovaai/overhaul-distillation, Segmentation/):
# - loss = sum / batch size x 1e-5, divided per feature by [8, 4, 2, 1, 1, 16] (4 backbone stages,
#   ASPP, decoder); the one feature tapped here is the decoder's (the classifier input), so
#   loss_weight = 1e-5 / 16;
# - connector conv initialised normal(0, sqrt(2 / out_channels)), BN 1 / 0 (init='kaiming_fan_out');
# - the connectors learn at 10x the base lr (paramwise custom key 'connectors');
# - the first epoch steps only the connectors (46 iterations = 367 images / batch 8), the student
#   stays in train mode (its BN statistics move): freeze_student with modules=[''], norm_eval=False.
# The student's BN-tapped feature is cloned by the tap, so its in-place ReLU does not change it.
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
        s_feat='student:decode_head.convs.1.pointwise_conv.bn',
        t_feat='teacher:decode_head.convs.0.bn'),
    connectors=dict(
        s_feat=dict(
            type='ConvBNConnector', in_channels=128, out_channels=1024, init='kaiming_fan_out')),
    losses=dict(
        loss_ofd=dict(
            type='OFDLoss',
            teacher_bn='decode_head.convs.0.bn',
            loss_weight=1e-5 / 16,
            student='s_feat',
            teacher='t_feat')),
    freeze_student=dict(modules=[''], iters=46, norm_eval=False))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'connectors': dict(lr_mult=10.0)}))
custom_hooks = [dict(type='StudentCheckpointHook', interval=500)]
