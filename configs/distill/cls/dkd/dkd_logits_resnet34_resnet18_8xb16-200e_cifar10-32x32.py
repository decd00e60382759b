# DKD (Zhao et al., CVPR 2022): target-class KD (alpha) + non-target-class KD (beta) on the
# classifier logits (head.fc), plus the student's own cross-entropy (weight 1): ResNet-34 ->
# ResNet-18 on CIFAR-10 with the student's own mmpretrain recipe (8 x 16 images, 200 epochs).
# alpha 1, beta 8, T 4 and the 20-epoch linear warm-up are the official mdistiller defaults
# (CIFAR-100; not tuned for CIFAR-10). The ground-truth labels reach the loss through
# data_samples. Warm-up: rtkd's loss schedule ramps per iteration; 20 epochs = 20 x 391
# iterations at a total batch of 128 (50000 / 128, rounded up): change warmup_iters with the
# batch size. (The official warm-up steps once per epoch: min(epoch / 20, 1), epochs from 1.)
# Run from the repo root: mim train mmpretrain configs/distill/cls/dkd/<this file>
# `mim test mmpretrain <this file> --checkpoint <work_dir>/epoch_200.pth`: the student's top-1.
_base_ = ['mmpretrain::resnet/resnet18_8xb16_cifar10.py', '../../../_base_/distill_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='Distiller',
    student='mmpretrain::resnet/resnet18_8xb16_cifar10.py',
    teacher=dict(
        config='mmpretrain::resnet/resnet34_8xb16_cifar10.py',
        checkpoint='https://download.openmmlab.com/mmclassification/v0/resnet/'
        'resnet34_b16x8_cifar10_20210528-a8aa36a6.pth'),
    taps=dict(s_logits='student:head.fc', t_logits='teacher:head.fc'),
    losses=dict(
        loss_dkd=dict(
            type='DKDLoss',
            alpha=1.0,
            beta=8.0,
            tau=4.0,
            loss_weight=1.0,
            student='s_logits',
            teacher='t_logits',
            schedule=dict(warmup_iters=20 * 391))),
    # the base's top-level data_preprocessor has no 'type'; the student's (built from its
    # config, normalisation included) is used instead
    data_preprocessor=None)
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
