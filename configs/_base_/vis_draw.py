# Runtime with prediction drawing ON. Use it INSTEAD of '../_base_/default_runtime.py' in `_base_`
# (mmengine forbids the same key in two base files). Every `interval`-th validation image is drawn
# (input | ground truth | prediction, dataset palette) by mmseg's SegVisualizationHook through
# SegLocalVisualizer and saved by LocalVisBackend as
#     <work_dir>/<timestamp>/vis_data/vis_image/val_<image name>_<iter>.png
# Without changing the config, the same from the command line:
#     mim train mmseg CFG --cfg-options default_hooks.visualization.draw=True \
#         default_hooks.visualization.interval=10
# and at test time (draws every test image into DIR):
#     mim test mmseg CFG --checkpoint CKPT --show-dir DIR
_base_ = ['./default_runtime.py']
default_hooks = dict(visualization=dict(type='SegVisualizationHook', draw=True, interval=10))
