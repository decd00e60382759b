# "Swap the loss": the CWD recipe with SKD's pixel-wise KL (Liu et al., CVPR 2019) instead.
_base_ = ['../cwd/cwd_logits_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py']
model = dict(
    losses=dict(
        _delete_=True,
        loss_pi=dict(
            type='PixelWiseKD', tau=1.0, loss_weight=10.0, student='s_logits', teacher='t_logits')))
