# Runtime that also logs to TensorBoard when the `tensorboard` package is installed (scalars:
# losses, lr, mIoU; images when drawing is on). Use it INSTEAD of '../_base_/default_runtime.py'
# in `_base_`. Without tensorboard it silently keeps only LocalVisBackend (vis_data/scalars.json),
# so the config works everywhere; `pip install tensorboard` turns the second backend on and
#     tensorboard --logdir <work_dir>
# shows the runs (logs are written to <work_dir>/<timestamp>/vis_data/). tensorboard is NOT part of
# requirements/ (the rtkd venv does not ship it); tools/analysis/distill_report.py reads the
# LocalVisBackend logs and needs no TensorBoard.
# Drawing on top: --cfg-options default_hooks.visualization.draw=True
_base_ = ['./default_runtime.py']
# (no `import` statement: mmengine would switch to its "lazy import" config syntax)
vis_backends = [dict(type='LocalVisBackend')] + (
    [dict(type='TensorboardVisBackend')]
    if __import__('importlib.util').util.find_spec('tensorboard') is not None else [])
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
