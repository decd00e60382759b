# The SKD recipe beside this file (BiSeNetV2 ft7000 teacher -> Fast-SCNN 6k) with the teacher's
# logits and classifier-input feature (1024 ch at 1/8, fp16, 4 scales + flip: 29.4 GB, built in
# 816 s here) read from a geometric teacher-output cache. Build it once:
#   python tools/distill/cache_teacher.py \
#     configs/distill/seg/skd/skd_logits-feat_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py \
#     --out work_dirs/teacher_cache/bisenetv2-ft7000_skd --scales 0.5 1.0 1.5 2.0 --flip
_base_ = ['./skd_logits-feat_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(teacher=dict(cache=dict(dir='work_dirs/teacher_cache/bisenetv2-ft7000_skd')))
