# Deep mutual learning (Zhang et al., CVPR 2018) on CamVid: two of the project's Fast-SCNNs, each
# with the 6k-iteration, 240x320-crop baseline recipe (configs/fast_scnn/fast-scnn_1xb8-6k_camvid-
# 240x320.py: its optimizer, poly schedule, aux losses), trained together from different random
# initialisations. Each member minimises its task losses + KL(p_other || p_self) of the logits
# (other member detached; the paper's T = 1, per-pixel KL averaged over pixels by HintonKD).
# Validation / `mim test` measure member `a` (--cfg-options model.eval_member=b for the other);
# export one member: tools/model_converters/extract_student.py iter_N.pth a.pth --member a.
_base_ = [
    '../../../fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py', '../../../_base_/distill_runtime.py'
]
model = dict(
    _delete_=True,
    type='CohortDistiller',
    members=dict(
        a='configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
        b='configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py'),
    taps=dict(a_logits='a:decode_head.conv_seg', b_logits='b:decode_head.conv_seg'),
    losses=dict(
        loss_dml=dict(type='HintonKD', tau=1.0, loss_weight=1.0, mutual=['a_logits', 'b_logits'])),
    eval_member='a')
optim_wrapper = dict(  # one optimizer per member (the baseline's own), saved and resumed
    _delete_=True,
    constructor='CohortOptimWrapperConstructor',
    a={{_base_.optim_wrapper}},
    b={{_base_.optim_wrapper}})
custom_hooks = [dict(type='StudentCheckpointHook', interval=400)]  # eval member a only
