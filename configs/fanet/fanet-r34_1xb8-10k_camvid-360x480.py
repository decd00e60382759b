# FANet-34 on CamVid: the FANet-18 CamVid recipe with the ImageNet ResNet-34 encoder.
_base_ = ['./fanet-r18_1xb8-10k_camvid-360x480.py']
model = dict(
    backbone=dict(
        resnet_cfg=dict(
            depth=34, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet34'))))
