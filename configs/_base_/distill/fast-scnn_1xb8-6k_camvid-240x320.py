# Student side of the converged CamVid benchmark recipes, without a teacher: the project's
# Fast-SCNN 6k baseline recipe (configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py: its
# optimizer, schedule and data) inside a Distiller, with the distillation runtime and a student
# checkpoint every 400 iterations. A method base adds taps and losses; a recipe adds the teacher
# (`_base_ = [<method base>, <teacher base>]`, `model = dict(teacher={{_base_.teacher}})`).
_base_ = ['../../fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student='configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py')
custom_hooks = [dict(type='StudentCheckpointHook', interval=400)]
