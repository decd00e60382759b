# Hinton KD (T = 4, weight 1) on the logits, ResNet-34 -> ResNet-18 on ImageNet-1k with the
# student's own mmpretrain recipe (8 x 32 images, 100 epochs).
# Run from the repo root: mim train mmpretrain configs/distill/cls/kd/<this file>
_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py', '../../../_base_/distill_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='Distiller',
    student='mmpretrain::resnet/resnet18_8xb32_in1k.py',
    teacher=dict(
        config='mmpretrain::resnet/resnet34_8xb32_in1k.py',
        checkpoint='https://download.openmmlab.com/mmclassification/v0/resnet/'
        'resnet34_8xb32_in1k_20210831-f257d4e6.pth'),
    taps=dict(s_logits='student:head.fc', t_logits='teacher:head.fc'),
    losses=dict(
        loss_kd=dict(
            type='HintonKD', tau=4.0, loss_weight=1.0, student='s_logits', teacher='t_logits')),
    data_preprocessor=None)
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
