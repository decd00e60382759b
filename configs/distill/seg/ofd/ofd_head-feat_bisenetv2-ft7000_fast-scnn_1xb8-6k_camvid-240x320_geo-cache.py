# The OFD recipe beside this file (BiSeNetV2 ft7000 teacher -> Fast-SCNN 6k) with the teacher's
# feature read from a geometric teacher-output cache (1024 ch at 1/8, fp16: ~7 GB for 4 scales +
# flip; the margin is read from the teacher BN once at build time). Build it once (~20 min):
#   python tools/distill/cache_teacher.py \
#     configs/distill/seg/ofd/ofd_head-feat_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py \
#     --out work_dirs/teacher_cache/bisenetv2-ft7000_ofd-feat --scales 0.5 1.0 1.5 2.0 --flip
_base_ = ['./ofd_head-feat_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(teacher=dict(cache=dict(dir='work_dirs/teacher_cache/bisenetv2-ft7000_ofd-feat')))
