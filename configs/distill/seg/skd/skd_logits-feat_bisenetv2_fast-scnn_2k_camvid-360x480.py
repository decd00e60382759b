# SKD, structured knowledge distillation (Liu et al., CVPR 2019): pixel-wise KL on the logits
# (weight 10), pair-wise similarity on the features entering the classifier (weight 1, pooling
# scale 0.5; channel counts may differ: 1024 teacher vs 128 student) and the holistic
# conditional WGAN-GP term (weight 0.1) with its own critic optimiser.
# BiSeNetV2 (shared CamVid teacher) -> the project's Fast-SCNN, CamVid 360x480, 2k iterations.
_base_ = ['../../../fast_scnn/fast-scnn_2k_camvid-360x480.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student='configs/fast_scnn/fast-scnn_2k_camvid-360x480.py',
    teacher=dict(config='../shared/teachers/bisenetv2_camvid-240x320_infer.py',
                 checkpoint='../shared/teachers/bisenetv2_camvid-240x320.pth'),
    taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg',
              s_feat='student:decode_head.conv_seg#in', t_feat='teacher:decode_head.conv_seg#in'),
    losses=dict(
        loss_pi=dict(type='PixelWiseKD', tau=1.0, loss_weight=10.0,
                     student='s_logits', teacher='t_logits'),
        loss_pa=dict(type='PairWiseKD', scale=0.5, loss_weight=1.0,
                     student='s_feat', teacher='t_feat'),
        loss_hkd=dict(type='HolisticKD', num_classes=11, loss_weight=0.1,
                      student='s_logits', teacher='t_logits')))
# Student: the Fast-SCNN recipe's SGD; critic: Adam as in the SKD code (lr 1e-4, betas 0.5/0.9).
optim_wrapper = dict(
    _delete_=True,
    constructor='DistillOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.045, momentum=0.9, weight_decay=4e-5),
                 paramwise_cfg=dict(dwconv_decay_mult=0.0)),
    discriminator=dict(type='OptimWrapper',
                       optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))))
model_wrapper_cfg = dict(type='DistillerDataParallel')
custom_hooks = [dict(type='StudentCheckpointHook', interval=500)]
