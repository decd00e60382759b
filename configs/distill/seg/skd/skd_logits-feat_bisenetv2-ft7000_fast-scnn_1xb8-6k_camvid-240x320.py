# SKD for the converged CamVid benchmark: BiSeNetV2 continued to 7000 iterations
# (configs/_base_/teachers/bisenetv2-ft7000_camvid-240x320.py) -> the project's Fast-SCNN 6k
# baseline recipe. Losses (the official code's settings), critic optimizer and student side:
# configs/_base_/distill/skd-logits-feat_fast-scnn_1xb8-6k_*. Live teacher; *_geo-cache.py (where
# present) reads a cache.
_base_ = [
    '../../../_base_/distill/skd-logits-feat_fast-scnn_1xb8-6k_camvid-240x320.py',
    '../../../_base_/teachers/bisenetv2-ft7000_camvid-240x320.py'
]
model = dict(teacher={{_base_.teacher}})
