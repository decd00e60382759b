# The CWD recipe beside this file (BiSeNetV2 ft7000 teacher -> Fast-SCNN 6k) with its teacher read
# from a geometric teacher-output cache (the teacher is not built; targets follow each sample's
# resize / crop / flip). Build the cache once (~20 min on 2 CPU cores):
#   python tools/distill/cache_teacher.py \
#     configs/distill/seg/cwd/cwd_logits_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py \
#     --out work_dirs/teacher_cache/bisenetv2-ft7000_logits --scales 0.5 1.0 1.5 2.0 --flip
# Another folder: --cfg-options model.teacher.cache.dir=DIR
_base_ = ['./cwd_logits_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(teacher=dict(cache=dict(dir='work_dirs/teacher_cache/bisenetv2-ft7000_logits')))
