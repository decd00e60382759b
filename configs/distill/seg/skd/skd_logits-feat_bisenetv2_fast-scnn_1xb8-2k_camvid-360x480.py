# SKD, structured knowledge distillation (Liu et al., CVPR 2019), with the official code's settings
# (irfanICMLL/structure_knowledge_distillation, run_train_val.sh / train_and_eval.py):
# pixel-wise KL on the logits, weight 10, normalised as the official code (sum over the batch /
# (H*W): reduction='sum_batch'); pair-wise similarity on the features entering the classifier
# (official --lambda-pa 0.5, --pool-scale 0.5; channel counts may differ: 1024 teacher vs 128
# student); the holistic conditional WGAN-GP term (--lambda-d 0.1) with its own critic optimizer,
# SGD lr 4e-4, momentum 0.9, weight decay 5e-4 as the official D_solver, at a constant lr (the
# student's poly schedule applies to the student only: param_scheduler is keyed by optimizer).
# The student feature is tapped before its classifier's dropout (decode_head.dropout#in), so the
# training-time dropout of the student is not distilled; the teacher runs in eval mode.
# Deviation: the critic is rtkd's ScoreMapCritic, not the official SAGAN-style net (HolisticKD).
# BiSeNetV2 (shared CamVid teacher) -> the project's Fast-SCNN, CamVid 360x480, 2k iterations.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py',
    '../../../_base_/teachers/bisenetv2_camvid-240x320.py', '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='Distiller',
    student='configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py',
    teacher={{_base_.teacher}},
    taps=dict(
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg',
        s_feat='student:decode_head.dropout#in',
        t_feat='teacher:decode_head.conv_seg#in'),
    losses=dict(
        loss_pi=dict(
            type='PixelWiseKD',
            tau=1.0,
            reduction='sum_batch',
            loss_weight=10.0,
            student='s_logits',
            teacher='t_logits'),
        loss_pa=dict(
            type='PairWiseKD', scale=0.5, loss_weight=0.5, student='s_feat', teacher='t_feat'),
        loss_hkd=dict(
            type='HolisticKD',
            num_classes=11,
            loss_weight=0.1,
            student='s_logits',
            teacher='t_logits')))
# Student: the Fast-SCNN recipe's SGD; critic: the official SGD (lr 4e-4) at a constant lr.
optim_wrapper = dict(
    _delete_=True,
    constructor='DistillOptimWrapperConstructor',
    student={{_base_.optim_wrapper}},  # the student recipe's own optimizer
    discriminator=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=4e-4, momentum=0.9, weight_decay=5e-4)))
param_scheduler = dict(
    _delete_=True,
    student={{_base_.param_scheduler}},
    discriminator=[dict(type='ConstantLR', factor=1.0, by_epoch=False)])
custom_hooks = [dict(type='StudentCheckpointHook', interval=500)]
