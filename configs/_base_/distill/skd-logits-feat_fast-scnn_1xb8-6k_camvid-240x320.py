# SKD (Liu et al., CVPR 2019), teacher-agnostic, with the official code's settings (see
# configs/distill/seg/skd/skd_logits-feat_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py for where
# each number comes from): pixel-wise KL x 10 (official sum-over-batch / (H*W) normalisation),
# pair-wise x 0.5 (pool scale 0.5) on the features entering the classifiers, holistic WGAN-GP
# x 0.1 with an SGD critic (lr 4e-4, constant). Recipes: configs/distill/seg/skd/*-6k_*.
_base_ = ['./fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(
    taps=dict(
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg',
        s_feat='student:decode_head.dropout#in',
        t_feat='teacher:decode_head.conv_seg#in'),
    losses=dict(
        loss_pi=dict(
            type='PixelWiseKD',
            tau=1.0,
            reduction='sum_batch',
            loss_weight=10.0,
            student='s_logits',
            teacher='t_logits'),
        loss_pa=dict(
            type='PairWiseKD', scale=0.5, loss_weight=0.5, student='s_feat', teacher='t_feat'),
        loss_hkd=dict(
            type='HolisticKD',
            num_classes=11,
            loss_weight=0.1,
            student='s_logits',
            teacher='t_logits')))
optim_wrapper = dict(
    _delete_=True,
    constructor='DistillOptimWrapperConstructor',
    student={{_base_.optim_wrapper}},  # the student recipe's own optimizer
    discriminator=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=4e-4, momentum=0.9, weight_decay=5e-4)))
param_scheduler = dict(
    _delete_=True,
    student={{_base_.param_scheduler}},
    discriminator=[dict(type='ConstantLR', factor=1.0, by_epoch=False)])
