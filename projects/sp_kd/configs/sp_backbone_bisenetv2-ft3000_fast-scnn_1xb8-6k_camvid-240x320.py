# SP-KD (Tung & Mori, ICCV 2019) on the features entering the classifiers: BiSeNetV2 teacher
# (continued to 3000 iterations) -> rtkd's Fast-SCNN with its 6k-iteration 240x320 recipe. The
# batch similarity matrices are 8 x 8 whatever the channels (student 128, teacher 1024), so no
# connector. gamma 3000 as in the paper (CIFAR-10); plus no other distillation term.
# Run from the repository root (custom_imports finds `projects.sp_kd.losses` there).
_base_ = [
    'rtkd::fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
    'rtkd::_base_/teachers/bisenetv2-ft3000_camvid-240x320.py'
]
custom_imports = dict(imports=['rtkd', 'projects.sp_kd.losses'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='Distiller',
    student='rtkd::fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
    teacher={{_base_.teacher}},
    taps=dict(s_feat='student:decode_head.dropout#in', t_feat='teacher:decode_head.conv_seg#in'),
    losses=dict(
        loss_sp=dict(type='SPLoss', loss_weight=3000.0, student='s_feat', teacher='t_feat')))
model_wrapper_cfg = dict(type='DistillerDataParallel')
custom_hooks = [dict(type='StudentCheckpointHook', interval=400)]
