# CamVid teacher of the converged benchmark: mmseg's stock BiSeNetV2 after 1800 + 1200 + 4000
# iterations on this machine (configs/baselines/bisenetv2_1xb8-ft4k_camvid-240x320.py from the
# ft3000 teacher; its best val checkpoint: val mIoU 65.62, test 55.42). Recipes take it with
# `teacher={{_base_.teacher}}`. The weights ship with the repository, in checkpoints/teachers/
# (13.6 MB; see its README.md); RTKD_TEACHERS=/path/to/teachers points this base to another
# folder instead (e.g. one you retrained it into), which must hold
#   bisenetv2_camvid-240x320_infer.py       the inference config: a copy of
#                                           _base_/teachers/bisenetv2_camvid-240x320_infer.py
#   bisenetv2_camvid-240x320_ft7000.pth     the weights (tools/benchmarks/camvid_teacher_ft7000.sh)
teacher = dict(
    config='{{$RTKD_TEACHERS:checkpoints/teachers}}/bisenetv2_camvid-240x320_infer.py',
    checkpoint='{{$RTKD_TEACHERS:checkpoints/teachers}}/bisenetv2_camvid-240x320_ft7000.pth')
