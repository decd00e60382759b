# FANet-34 on Cityscapes: the FANet-18 recipe with the ImageNet ResNet-34 encoder.
_base_ = ['./fanet-r18_1xb16-40k_cityscapes-512x1024.py']
model = dict(
    backbone=dict(
        resnet_cfg=dict(
            depth=34, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet34'))))
