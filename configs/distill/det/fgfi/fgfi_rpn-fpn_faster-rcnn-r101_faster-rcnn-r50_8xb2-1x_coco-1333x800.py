# FGFI (Wang et al., CVPR 2019) for a two-stage detector: the mask uses the student's RPN anchors
# (rpn_head.prior_generator, 5 FPN levels, found automatically) and the GT boxes; psi 0.5;
# 3x3 conv + ReLU adaptation layer shared by the levels; loss weight 0.01 (the paper's lambda).
# Official training details (twangnh/Distilling-Object-Detectors, trainval_net_sup.py): the
# adaptation conv starts from a truncated normal with std 1e-4 and the first 400 iterations
# train without imitation (--ws 400; at batch 1 there, 8x2 here: we keep the iteration count).
# Run from the repo root: mim train mmdet configs/distill/det/fgfi/<this file>
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
    taps=dict(s_fpn='student:neck', t_fpn='teacher:neck'),
    losses=dict(
        loss_fgfi=dict(
            type='FGFILoss',
            psi=0.5,
            in_channels=256,
            out_channels=256,
            prior_source='rpn_head.prior_generator',
            adapter_init_std=1e-4,
            loss_weight=0.01,
            student='s_fpn',
            teacher='t_fpn',
            schedule=dict(start_iter=400))))
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
