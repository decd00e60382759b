# CWD (Shu et al., ICCV 2021) RetinaNet-R101 -> RetinaNet-R18: on every FPN level and on the
# classification logits of every level (RetinaHead returns (cls_scores, bbox_preds), tapped as
# bbox_head[0][i]). mmdet's 'tensor' mode calls bbox_head.forward directly (no hooks fire), so
# the teacher runs in 'predict' mode; it is cut short once its taps fired (no NMS).
# Run from the repo root: mim train mmdet configs/distill/det/cwd/<this file>
_base_ = ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', '../../../_base_/distill_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='Distiller',
    student='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    teacher=dict(
        config='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
        'retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'),
    teacher_mode='predict',
    taps={
        **{
            f's_p{i}': f'student:neck[{i}]'
            for i in range(5)
        },
        **{
            f't_p{i}': f'teacher:neck[{i}]'
            for i in range(5)
        },
        **{
            f's_cls{i}': f'student:bbox_head[0][{i}]'
            for i in range(5)
        },
        **{
            f't_cls{i}': f'teacher:bbox_head[0][{i}]'
            for i in range(5)
        }
    },
    losses={
        **{
            f'loss_cwd_p{i}':
            dict(
                type='ChannelWiseKD',
                tau=1.0,
                loss_weight=10.0,
                student=f's_p{i}',
                teacher=f't_p{i}')
            for i in range(5)
        },
        **{
            f'loss_cwd_cls{i}':
            dict(
                type='ChannelWiseKD',
                tau=1.0,
                loss_weight=5.0,
                student=f's_cls{i}',
                teacher=f't_cls{i}')
            for i in range(5)
        }
    })
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
