# The OFD recipe beside this file (BiSeNetV2 ft7000 teacher -> Fast-SCNN 6k) with the teacher's
# feature read from a geometric teacher-output cache (1024 ch at 1/8, fp16, 4 scales + flip:
# 29.1 GB, built in 796 s here; the margin is read from the teacher BN once at build time). A
# training step reads ~10 MB per sample: ~1.1 s/iteration here vs 0.6 for the student alone.
# Build it once:
#   python tools/distill/cache_teacher.py \
#     configs/distill/seg/ofd/ofd_head-feat_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py \
#     --out work_dirs/teacher_cache/bisenetv2-ft7000_ofd-feat --scales 0.5 1.0 1.5 2.0 --flip
_base_ = ['./ofd_head-feat_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(teacher=dict(cache=dict(dir='work_dirs/teacher_cache/bisenetv2-ft7000_ofd-feat')))
