# CWD (Shu et al., ICCV 2021) on the logits, teacher-agnostic: tau 4, loss weight 3, the authors'
# TorchDistiller setting for logits (MMRazor's recipe uses tau 1, weight 5). Both logits are 1/8
# of the input (30 x 40 for 240x320 crops). Recipes: configs/distill/seg/cwd/*-6k_*.
_base_ = ['./fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(
    taps=dict(s_logits='student:decode_head.conv_seg', t_logits='teacher:decode_head.conv_seg'),
    losses=dict(
        loss_cwd=dict(
            type='ChannelWiseKD', tau=4.0, loss_weight=3.0, student='s_logits',
            teacher='t_logits')))
