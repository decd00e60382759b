# FANet-34: FANet-18 with an ImageNet ResNet-34 encoder (23.9 M parameters with 19 classes).
_base_ = ['./fanet_r18.py']
model = dict(
    backbone=dict(
        resnet_cfg=dict(
            depth=34, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet34'))))
