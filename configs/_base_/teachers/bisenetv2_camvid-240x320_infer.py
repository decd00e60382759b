# Inference config of the CamVid BiSeNetV2 teachers (the teacher bases beside it): mmseg's stock
# BiSeNetV2 (BN, 11 classes) without its training-only auxiliary heads. Its `model` is the same
# dict as the shared ../shared/teachers/bisenetv2_camvid-240x320_infer.py (padding / ignore index
# 11 and mmseg's default CE, as those weights were trained; irrelevant at inference), so the
# teacher-cache and KA digests of a teacher built from either file agree
# (tests/test_distill/test_distiller_recipes.py checks it). Being a teacher's file, it sits in
# _base_/ and is left out of the config sweeps that require avg_non_ignore CE in every training
# config.
# Put it into your $RTKD_TEACHERS folder with the weights (flattened, so it works outside the
# repository): python tools/misc/install_teacher.py THIS_FILE CKPT --name NAME; or test a teacher
# on rtkd's CamVid test split:
#   mim test mmseg configs/_base_/teachers/bisenetv2_camvid-240x320_infer.py --checkpoint T.pth
# It loads the weights of configs/baselines/bisenetv2_1xb8-1800_camvid-240x320.py and of its
# continuations (their auxiliary heads' weights are left out).
_base_ = ['mmseg::_base_/models/bisenetv2.py', '../datasets/camvid.py', '../default_runtime.py']
norm_cfg = dict(type='BN', requires_grad=True)
crop_size = (240, 320)
data_preprocessor = dict(size=crop_size, seg_pad_val=11)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(num_classes=11, ignore_index=11, norm_cfg=norm_cfg),
    auxiliary_head=None)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
train_dataloader = None  # inference only (mmengine's Runner wants all training parts or none)
