# OFD for the converged CamVid benchmark: the ft7000 BiSeNetV2 teacher -> the project's Fast-SCNN
# with its 6k-iteration, 240x320-crop baseline recipe; the official segmentation settings of
# ofd_head-feat_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py (margin ReLU from the teacher BN, partial
# L2, sum / batch x 1e-5 / 16, connector normal(0, sqrt(2/out)) at 10x lr, first epoch = 46
# iterations connectors only). Both features are 1/8 of the crop (30 x 40). Live teacher.
_base_ = ['../cwd/cwd_logits_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(
    taps=dict(
        _delete_=True,
        s_feat='student:decode_head.convs.1.pointwise_conv.bn',
        t_feat='teacher:decode_head.convs.0.bn'),
    connectors=dict(
        s_feat=dict(
            type='ConvBNConnector', in_channels=128, out_channels=1024, init='kaiming_fan_out')),
    losses=dict(
        _delete_=True,
        loss_ofd=dict(
            type='OFDLoss',
            teacher_bn='decode_head.convs.0.bn',
            loss_weight=1e-5 / 16,
            student='s_feat',
            teacher='t_feat')),
    freeze_student=dict(modules=[''], iters=46, norm_eval=False))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'connectors': dict(lr_mult=10.0)}))
