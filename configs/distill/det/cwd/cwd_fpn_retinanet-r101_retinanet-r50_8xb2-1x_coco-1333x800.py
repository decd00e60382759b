# CWD (Shu et al., ICCV 2021) on every FPN level (P3-P7): per channel, softmax over positions,
# KL teacher || student. tau 1 and weight 10 per level follow common CWD-on-FPN recipes (not tuned
# here). Both FPNs have 256 channels and the same strides, so no connector is needed.
# Run from the repo root: mim train mmdet configs/distill/det/cwd/<this file>
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../../../_base_/distill_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='Distiller',
    student='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    teacher=dict(
        config='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
        'retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'),
    taps={
        **{
            f's_p{i}': f'student:neck[{i}]'
            for i in range(5)
        },
        **{
            f't_p{i}': f'teacher:neck[{i}]'
            for i in range(5)
        }
    },
    losses={
        f'loss_cwd_p{i}':
        dict(type='ChannelWiseKD', tau=1.0, loss_weight=10.0, student=f's_p{i}', teacher=f't_p{i}')
        for i in range(5)
    })
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
