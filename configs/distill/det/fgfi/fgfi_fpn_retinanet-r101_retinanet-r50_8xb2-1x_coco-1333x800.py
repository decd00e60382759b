# FGFI (Wang et al., CVPR 2019): imitate the teacher's FPN features only near objects. The mask
# comes from the STUDENT's anchors (bbox_head.prior_generator) and the GT boxes: per box, anchors
# with IoU > 0.5 * max IoU, union -> H x W per level. One 3x3 conv + ReLU adaptation layer
# (inside the loss, shared by the 5 levels). Loss weight 0.01 (the paper's lambda).
# Official training details (twangnh/Distilling-Object-Detectors, trainval_net_sup.py): the
# adaptation conv starts from a truncated normal with std 1e-4 and the first 400 iterations
# train without imitation (--ws 400; at batch 1 there, 8x2 here: we keep the iteration count).
# Run from the repo root: mim train mmdet configs/distill/det/fgfi/<this file>
# The teacher checkpoint is downloaded from OpenMMLab on first use (or set a local path).
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
    taps=dict(s_fpn='student:neck', t_fpn='teacher:neck'),  # tuples of the 5 FPN levels
    losses=dict(
        loss_fgfi=dict(
            type='FGFILoss',
            psi=0.5,
            in_channels=256,
            out_channels=256,
            adapter_init_std=1e-4,
            loss_weight=0.01,
            student='s_fpn',
            teacher='t_fpn',
            schedule=dict(start_iter=400))))
# stop on a non-finite loss (task or distillation) before that iteration's checkpoint
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook'))
