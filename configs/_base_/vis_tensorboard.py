# TensorBoard on, for ANY config (network, baseline or distillation recipe): add this ONE line to
# the config itself (not to `_base_`: the network configs already inherit a runtime base, and
# mmengine refuses the same key, `visualizer`, in two bases: "Duplicate key is not allowed among
# bases"). It merges into the inherited visualizer (type and name stay; the backend list is
# replaced):
#
#     visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
#
# Scalars (losses, lr, mIoU, the per-class IoU.<class> of PerClassIoUMetric; images when drawing
# is on) then go to <work_dir>/<timestamp>/vis_data/events.out.tfevents.* as well as to
# scalars.json (LocalVisBackend, read by tools/analysis/distill_report.py):
#     tensorboard --logdir <work_dir>
# tensorboard is installed by tools/setup_env.sh (requirements/runtime.txt).
#
# This file is the same thing as a runtime base: use it INSTEAD of '../_base_/default_runtime.py'
# in a new config's `_base_`.
_base_ = ['./default_runtime.py']
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(vis_backends=vis_backends)
