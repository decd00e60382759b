# CamVid teacher: mmseg's stock BiSeNetV2 trained 1800 + 1200 iterations on this machine
# (../shared/teachers/README.md: val mIoU 59.07 at 360x480). Recipes take it with
# `teacher={{_base_.teacher}}`; point `checkpoint` at your copy (or train it with
# configs/baselines/bisenetv2_1800_camvid-240x320.py followed by the continuation config).
teacher = dict(
    config='../shared/teachers/bisenetv2_camvid-240x320_infer.py',
    checkpoint='../shared/teachers/bisenetv2_camvid-240x320_ft3000.pth')
