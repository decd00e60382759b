# CamVid teacher: mmseg's stock BiSeNetV2 trained 1800 + 1200 iterations on this machine
# (val mIoU 59.07 at 360x480). Recipes take it with `teacher={{_base_.teacher}}`.
# The folder is set once, by the environment: RTKD_TEACHERS=/path/to/teachers (default
# ../shared/teachers, the shared folder of this machine, relative to the repository root).
# It must hold
#   bisenetv2_camvid-240x320_infer.py       the inference config: a copy of
#                                           _base_/teachers/bisenetv2_camvid-240x320_infer.py
#   bisenetv2_camvid-240x320_ft3000.pth     the weights; to train them yourself see
#                                           configs/distill/seg/README.md ("The teacher")
teacher = dict(
    config='{{$RTKD_TEACHERS:../shared/teachers}}/bisenetv2_camvid-240x320_infer.py',
    checkpoint='{{$RTKD_TEACHERS:../shared/teachers}}/bisenetv2_camvid-240x320_ft3000.pth')
