# Runtime of a distillation recipe (add it to the recipe's `_base_` list, after the student's
# config): the distiller's own DDP wrapper (it runs the distiller's train_step, needed for
# HolisticKD's second optimizer and for freeze_student under DDP; no find_unused_parameters) and
# the hook that writes the plain student (`student_latest.pth` at the end, loadable by the
# student config and by tools/deploy/export_onnx.py).
# For student-only checkpoints during training as well (`student_iter_N.pth`), a recipe
# replaces the hook list:  custom_hooks = [dict(type='StudentCheckpointHook', interval=400)]
model_wrapper_cfg = dict(type='DistillerDataParallel')
custom_hooks = [dict(type='StudentCheckpointHook', interval=-1)]
