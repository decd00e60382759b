# Generic feature distillation on FPN levels: standardised MSE (NFDLoss: each map normalised per
# sample and channel over positions, then MSE), Faster R-CNN R101 -> R50. For a plain FitNets
# MSE replace the loss type by 'FitNetsLoss'. Weight 1 per level (not tuned here).
# Run from the repo root: mim train mmdet configs/distill/det/nfd/<this file>
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../../../_base_/distill_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='Distiller',
    student='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    teacher=dict(
        config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
        'faster_rcnn_r101_fpn_1x_coco/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth'),
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
        f'loss_nfd_p{i}':
        dict(type='NFDLoss', loss_weight=1.0, student=f's_p{i}', teacher=f't_p{i}')
        for i in range(5)
    })
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
