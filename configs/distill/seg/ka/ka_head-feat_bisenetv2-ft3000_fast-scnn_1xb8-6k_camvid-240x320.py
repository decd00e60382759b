# Knowledge adaptation (He et al., CVPR 2019), stage 2 of 2: the project's Fast-SCNN (6k
# iterations, 240x320 crops, as the CWD/SKD 6k recipes) learns from the BiSeNetV2 ft3000 teacher
# through the frozen stage-1 encoder E (run stage 1 first; its checkpoint is named below):
#   L = CE + 50 * L_adapt(C_f(F_s), E(F_t)) + 1 * L_aff(C_a(F_s), E(F_t))      (paper weights)
# F_s: the student's feature entering its classifier (128 ch, 1/8); F_t: the teacher's (1024 ch,
# 1/8); E(F_t): 128 ch at 1/16 (the encoder has a stride-2 layer). C_f = 3x3 conv + BN + ReLU
# (paper), C_a = 3x3 conv (torchdistill's affinity adapter); both stride 2 here to reach the
# code's 15 x 20 grid (the paper's student already has twice the teacher's output stride).
# L_adapt: per-position l2-normalised vectors, l1 distance (p=1, q=2), mean over positions;
# L_aff: cosine-similarity matrices of the 300 positions, mean row-wise l2 distance.
# Scale, first 3 iterations (stage-1 encoder after 5 iterations only): weighted loss_adapt ~450 ->
# 350, loss_aff ~8 -> 5, decode CE ~2.4: weight 50 on the per-position formula dominates at the
# start; lower it if the student's CE stalls. ~13 s/iteration on this busy CPU (1 thread).
_base_ = ['../cwd/cwd_logits_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py']
stage1 = ('work_dirs/ka-stage1_head-feat_bisenetv2-ft3000_1xb8-300_camvid-240x320/'
          'iter_300.pth')
model = dict(
    taps=dict(
        _delete_=True,
        s_ad='student:decode_head.dropout#in',
        s_aff='student:decode_head.dropout#in',
        t_feat='teacher:decode_head.conv_seg#in'),
    connectors=dict(
        t_feat=dict(type='KAEncoderConnector', checkpoint=stage1),
        s_ad=dict(type='KAAdapter', in_channels=128, out_channels=128, stride=2),
        s_aff=dict(
            type='KAAdapter', in_channels=128, out_channels=128, stride=2, norm=False, relu=False)),
    losses=dict(
        _delete_=True,
        loss_adapt=dict(
            type='KAAdaptationLoss', p=1, q=2, loss_weight=50.0, student='s_ad', teacher='t_feat'),
        loss_aff=dict(type='KAAffinityLoss', loss_weight=1.0, student='s_aff', teacher='t_feat')))
