# "Swap the student": the CWD recipe above with mmseg's stock Fast-SCNN as the student.
_base_ = ['./cwd_logits_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py']
model = dict(student='configs/baselines/mmseg-fast-scnn_1xb8-2k_camvid-360x480.py')
