# LinkNet (ResNet-18) on CamVid (11 classes, 360x480). From the official code
# (github.com/e-lab/LinkNet): batch 8, RMSProp (Torch7 optim.rmsprop: alpha 0.99, eps 1e-8 outside
# the square root as in PyTorch, no momentum), constant lr 5e-4, no weight decay, ~100 epochs
# (45 full batches of the 367 images per epoch; 5k iterations ~ 109 epochs), cross-entropy weighted
# by the official formula w_c = 1 / ln(1.02 + h_c / max_k h_k) (models/model.lua), here on the
# histogram h of the 367 SegNet train labels (void excluded; it is not the largest class, so
# counting it changes nothing), made by
#   python tools/dataset_converters/class_weights.py \
#       configs/linknet/linknet-r18_1xb8-5k_camvid-360x480.py --method linknet
# The project's choices: the common 480x360 SegNet version of CamVid (the official code remaps the
# 32 raw classes itself and trains at 768x576), 360x480 crops with mmseg's CamVid augmentation (the
# official code has none), ImageNet mean/std (official: mean subtraction only), void ignored.
# Single-device config (BN).
_base_ = [
    '../_base_/models/linknet_r18.py', '../_base_/datasets/camvid.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_poly.py'
]
crop_size = (360, 480)
num_classes = 11
class_weight = [
    2.2748, 1.7785, 20.0852, 1.4223, 6.6714, 3.5331, 18.0237, 18.4834, 5.3558, 25.3775, 34.7290
]
data_preprocessor = dict(size=crop_size, seg_pad_val=255)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        num_classes=num_classes,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            avg_non_ignore=True,
            loss_weight=1.0,
            class_weight=class_weight)))
max_iters = 5000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='RMSprop', lr=5e-4, alpha=0.99, eps=1e-8, weight_decay=0.0))
param_scheduler = [
    dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500))
