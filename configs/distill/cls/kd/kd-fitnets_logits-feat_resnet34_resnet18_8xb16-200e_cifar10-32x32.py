# Hinton KD on the logits plus a FitNets feature hint (MSE) on the last backbone stage
# (both 512 x 4 x 4 on CIFAR; a 1x1 conv + BN regressor on the student side, as FitNets uses).
# Run from the repo root: mim train mmpretrain configs/distill/cls/kd/<this file>
_base_ = ['./kd_logits_resnet34_resnet18_8xb16-200e_cifar10-32x32.py']
model = dict(
    taps=dict(s_feat='student:backbone[0]', t_feat='teacher:backbone[0]'),
    connectors=dict(s_feat=dict(type='ConvBNConnector', in_channels=512, out_channels=512)),
    losses=dict(
        loss_hint=dict(type='FitNetsLoss', loss_weight=1.0, student='s_feat', teacher='t_feat')))
