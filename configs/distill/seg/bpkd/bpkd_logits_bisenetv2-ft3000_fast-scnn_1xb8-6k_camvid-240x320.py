# BPKD (Liu et al., WACV 2024) for the converged CamVid benchmark: the BiSeNetV2 teacher
# continued to 3000 iterations (val 59.07) -> the project's Fast-SCNN with its 6k-iteration,
# 240x320-crop recipe (configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py, the baseline).
# The ground truth at the logits' size (30 x 40) is split into a boundary band (3x3 window: a
# 2-pixel band, ~16 image pixels) and the body; edge: per-pixel KL (tau 1, weight 10), body:
# channel-wise KL over the body positions (tau 4, weight 3). The authors' training code is not
# released: these settings are rtkd's (see BPKDLoss's docstring), not the paper's.
_base_ = ['../cwd/cwd_logits_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(
    losses=dict(
        _delete_=True,
        loss_bpkd=dict(
            type='BPKDLoss',
            edge_width=3,
            ignore_index=255,
            edge_tau=1.0,
            edge_weight=10.0,
            body_tau=4.0,
            body_weight=3.0,
            student='s_logits',
            teacher='t_logits')))
