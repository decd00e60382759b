# Online distillation with a trainable teacher on CamVid: the shared BiSeNetV2 (continued to 3000
# iterations, val 59.07; configs/_base_/teachers/bisenetv2-ft3000_camvid-240x320.py) initialises
# the teacher, which keeps its task loss on and goes on learning (SGD lr 0.005, a tenth of its
# training lr, poly) while the project's Fast-SCNN (6k-iteration, 240x320-crop baseline recipe)
# learns from it: task losses + KL(p_teacher || p_student) of the logits (T = 1, teacher detached).
# One direction only; `mutual=['s_logits', 't_logits']` instead of student=/teacher= makes it
# deep mutual learning between a large and a small network. The teacher's void label is 255 in
# rtkd's CamVid pipeline (its own training config used 11). Validation / `mim test` measure the
# student; tools/model_converters/extract_student.py iter_N.pth t.pth --member teacher exports
# the trained teacher.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
    '../../../_base_/teachers/bisenetv2-ft3000_camvid-240x320.py',
    '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='CohortDistiller',
    members=dict(
        student='configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
        teacher=dict(
            config={{_base_.teacher.config}},
            checkpoint={{_base_.teacher.checkpoint}},
            cfg_options={'model.decode_head.ignore_index': 255})),
    taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
    losses=dict(
        loss_kd=dict(
            type='HintonKD', tau=1.0, loss_weight=1.0, student='s_logits', teacher='t_logits')),
    eval_member='student')
optim_wrapper = dict(
    _delete_=True,
    constructor='CohortOptimWrapperConstructor',
    student={{_base_.optim_wrapper}},
    teacher=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=5e-4)))
custom_hooks = [dict(type='StudentCheckpointHook', interval=400)]
