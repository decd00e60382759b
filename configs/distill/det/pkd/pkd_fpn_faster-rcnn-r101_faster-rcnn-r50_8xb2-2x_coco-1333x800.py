# PKD (Cao et al., NeurIPS 2022): each FPN level of student and teacher standardised per channel
# (over the batch and positions), then MSE / 2 (= 1 - Pearson correlation), Faster R-CNN R101 ->
# R50. The official mmrazor recipe (configs/distill/mmdet/pkd/pkd_fpn_faster-rcnn_r101_faster-
# rcnn_r50_2x_coco.py, 40.3 mAP vs 38.4 for the student alone): levels P2-P5 (neck outputs
# 0-3, not P6), weight 6 each, 2x schedule, the 2x-trained R101 teacher (39.8 mAP).
# Run from the repo root: mim train mmdet configs/distill/det/pkd/<this file>
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py', '../../../_base_/distill_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='Distiller',
    student='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
    teacher=dict(
        config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
        'faster_rcnn_r101_fpn_2x_coco/'
        'faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'),
    taps={
        **{
            f's_p{i}': f'student:neck[{i}]'
            for i in range(4)
        },
        **{
            f't_p{i}': f'teacher:neck[{i}]'
            for i in range(4)
        }
    },
    losses={
        f'loss_pkd_p{i}':
        dict(type='PKDLoss', loss_weight=6.0, student=f's_p{i}', teacher=f't_p{i}')
        for i in range(4)
    })
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
