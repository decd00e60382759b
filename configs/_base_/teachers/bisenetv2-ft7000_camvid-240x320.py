# CamVid teacher of the converged benchmark: mmseg's stock BiSeNetV2 after 1800 + 1200 + 4000
# iterations on this machine (configs/baselines/bisenetv2_1xb8-ft4k_camvid-240x320.py from the
# ft3000 teacher; its best val checkpoint). Recipes take it with `teacher={{_base_.teacher}}`.
# The folder is set once, by the environment: RTKD_TEACHERS=/path/to/teachers (default
# ../shared/teachers, relative to the repository root). It must hold
#   bisenetv2_camvid-240x320_infer.py       the inference config: a copy of
#                                           _base_/teachers/bisenetv2_camvid-240x320_infer.py
#   bisenetv2_camvid-240x320_ft7000.pth     the weights; to train them yourself see
#                                           configs/distill/seg/README.md ("The teacher")
teacher = dict(
    config='{{$RTKD_TEACHERS:../shared/teachers}}/bisenetv2_camvid-240x320_infer.py',
    checkpoint='{{$RTKD_TEACHERS:../shared/teachers}}/bisenetv2_camvid-240x320_ft7000.pth')
