_base_ = ['../../../configs/baselines/mmseg-fast-scnn_1xb8-2k_camvid-360x480.py']
custom_imports = dict(
    imports=['rtkd', 'projects.example_project.example_project'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='DSConvFCNHead',
        in_channels=128,
        channels=128,
        num_convs=2,
        in_index=-1,
        num_classes=11,
        norm_cfg=norm_cfg,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)))
