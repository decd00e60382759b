# CIRKD (Yang et al., CVPR 2022) for the converged CamVid benchmark: the BiSeNetV2 teacher
# continued to 3000 iterations (val 59.07) -> the project's Fast-SCNN with its 6k-iteration,
# 240x320-crop recipe (configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py, the baseline).
# The official total (winycg/CIRKD train_cirkd.py): Hinton KD on the logits (T 1, weight 1) +
# mini-batch pixel-to-pixel (weight 1, tau 0.1) + memory pixel-to-pixel and pixel-to-region
# (weights 0.1 each, tau 0.1, KL tau 1, 4096 / 1024 contrast entries) on the embeddings entering
# the classifiers: student decode_head.conv_seg input (128 ch, after its dropout as in the
# official code) through CIRKD's projection head, teacher decode_head.conv_seg input (1024 ch),
# both 30 x 40 for 240x320 crops.
# Changed for CamVid and this CPU: the official queues (20000 pixels / 2000 regions per class,
# sized for Cityscapes' 2975 images) scaled to CamVid's 367 training images (2560 / 256; the
# MemoryBankCheckHook rejects more than 16 x 367 pixels / 367 regions), and the mini-batch term
# on 2x2 average-pooled embeddings (the official code's `pooling` option; unpooled it costs ~3 s
# more per iteration here). Cost measured on this (shared) machine, one thread, batch 8 at
# 240x320: ~16 s per training step vs ~5.5-9 s for the CWD recipe; most of it is the memory
# terms (9600 anchors x 4103 pixel entries x 1024 channels, twice) and the 1024-channel head.
_base_ = ['../cwd/cwd_logits_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py']
model = dict(
    taps=dict(
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg',
        s_embed='student:decode_head.conv_seg#in',
        t_embed='teacher:decode_head.conv_seg#in'),
    losses=dict(
        _delete_=True,
        loss_kd=dict(
            type='HintonKD', tau=1.0, loss_weight=1.0, student='s_logits', teacher='t_logits'),
        loss_cirkd=dict(
            type='CIRKDLoss',
            num_classes=11,
            student_channels=128,
            teacher_channels=1024,
            ignore_index=255,
            minibatch_weight=1.0,
            memory_pixel_weight=0.1,
            memory_region_weight=0.1,
            minibatch_tau=0.1,
            contrast_tau=0.1,
            contrast_kd_tau=1.0,
            pixel_memory_size=2560,
            region_memory_size=256,
            pixel_contrast_size=4096,
            region_contrast_size=1024,
            pixel_update_freq=16,
            minibatch_pool=2,
            student='s_embed',
            teacher='t_embed')))
custom_hooks = [dict(type='StudentCheckpointHook', interval=400), dict(type='MemoryBankCheckHook')]
