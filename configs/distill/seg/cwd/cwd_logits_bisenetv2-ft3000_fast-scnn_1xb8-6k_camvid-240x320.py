# CWD on the logits for the converged CamVid benchmark: BiSeNetV2 continued to 3000 iterations
# (configs/_base_/teachers/bisenetv2-ft3000_camvid-240x320.py) -> the project's Fast-SCNN 6k
# baseline recipe. Loss and student side: configs/_base_/distill/cwd-logits_fast-scnn_1xb8-6k_*
# (tau 4, weight 3). Live teacher (~3.5x the student step on CPU); the *_geo-cache.py sibling
# reads a teacher cache at ~1.03x.
_base_ = [
    '../../../_base_/distill/cwd-logits_fast-scnn_1xb8-6k_camvid-240x320.py',
    '../../../_base_/teachers/bisenetv2-ft3000_camvid-240x320.py'
]
model = dict(teacher={{_base_.teacher}})
