crop_size = (
    240,
    320,
)
custom_hooks = [
    dict(interval=400, type='StudentCheckpointHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'rtkd',
    ])
data_preprocessor = dict(
    bgr_to_rgb=True,
    mean=[
        123.675,
        116.28,
        103.53,
    ],
    pad_val=0,
    seg_pad_val=255,
    size=(
        240,
        320,
    ),
    std=[
        58.395,
        57.12,
        57.375,
    ],
    type='SegDataPreProcessor')
data_root = 'data/camvid'
dataset_type = 'CamVidDataset'
default_hooks = dict(
    checkpoint=dict(
        by_epoch=False,
        interval=400,
        max_keep_ckpts=2,
        save_last=True,
        type='CheckpointHook'),
    final_train_log=dict(type='FinalTrainLogHook'),
    logger=dict(interval=20, log_metric_by_epoch=False, type='LoggerHook'),
    non_finite_loss=dict(type='NonFiniteLossHook'),
    recipe_settings=dict(type='RecipeSettingsHook'),
    test_visualization=dict(interval=1, type='TestVisualizationIntervalHook'),
    visualization=dict(draw=False, interval=50, type='SegVisualizationHook'))
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
geometry_meta_keys = (
    'img_path',
    'seg_map_path',
    'ori_shape',
    'img_shape',
    'pad_shape',
    'scale_factor',
    'flip',
    'flip_direction',
    'reduce_zero_label',
    'crop_bbox',
)
launcher = 'none'
load_from = None
log_level = 'INFO'
log_processor = dict(by_epoch=False)
max_iters = 6000
model = dict(
    losses=dict(
        loss_cwd=dict(
            loss_weight=10,
            student='s_logits',
            tau=4.0,
            teacher='t_logits',
            type='ChannelWiseKD')),
    student='configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py',
    taps=dict(
        s_logits='student:decode_head.conv_seg',
        t_logits='teacher:decode_head.conv_seg'),
    teacher=dict(
        cache=dict(dir='work_dirs/teacher_cache/bisenetv2-ft7000_logits'),
        checkpoint='checkpoints/teachers/bisenetv2_camvid-240x320_ft7000.pth',
        config='checkpoints/teachers/bisenetv2_camvid-240x320_infer.py'),
    type='Distiller')
model_wrapper_cfg = dict(type='DistillerDataParallel')
norm_cfg = dict(requires_grad=True, type='BN')
num_classes = 11
optim_wrapper = dict(
    clip_grad=None,
    optimizer=dict(lr=0.045, momentum=0.9, type='SGD', weight_decay=4e-05),
    paramwise_cfg=dict(dwconv_decay_mult=0.0),
    type='OptimWrapper')
optimizer = dict(lr=0.01, momentum=0.9, type='SGD', weight_decay=0.0005)
param_scheduler = [
    dict(
        begin=0,
        by_epoch=False,
        end=6000,
        eta_min=0.0001,
        power=0.9,
        type='PolyLR'),
]
randomness = dict(seed=0)
resume = False
teacher = dict(
    checkpoint='checkpoints/teachers/bisenetv2_camvid-240x320_ft7000.pth',
    config='checkpoints/teachers/bisenetv2_camvid-240x320_infer.py')
test_cfg = dict(type='TestLoop')
test_dataloader = dict(
    batch_size=1,
    dataset=dict(
        data_prefix=dict(img_path='test', seg_map_path='testannot'),
        data_root='data/camvid',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(keep_ratio=True, scale=(
                480,
                360,
            ), type='Resize'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ],
        type='CamVidDataset'),
    num_workers=2,
    persistent_workers=True,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = dict(
    iou_metrics=[
        'mIoU',
    ], type='PerClassIoUMetric')
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(keep_ratio=True, scale=(
        480,
        360,
    ), type='Resize'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_cfg = dict(max_iters=6000, type='IterBasedTrainLoop', val_interval=400)
train_dataloader = dict(
    batch_size=8,
    dataset=dict(
        data_prefix=dict(img_path='train', seg_map_path='trainannot'),
        data_root='data/camvid',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(
                keep_ratio=True,
                ratio_range=(
                    0.5,
                    2.0,
                ),
                scale=(
                    480,
                    360,
                ),
                type='RandomResize'),
            dict(
                cat_max_ratio=0.75,
                crop_size=(
                    240,
                    320,
                ),
                type='RecordedRandomCrop'),
            dict(prob=0.5, type='RandomFlip'),
            dict(type='PhotoMetricDistortion'),
            dict(
                meta_keys=(
                    'img_path',
                    'seg_map_path',
                    'ori_shape',
                    'img_shape',
                    'pad_shape',
                    'scale_factor',
                    'flip',
                    'flip_direction',
                    'reduce_zero_label',
                    'crop_bbox',
                ),
                type='PackSegInputs'),
        ],
        type='CamVidDataset'),
    num_workers=2,
    persistent_workers=True,
    sampler=dict(shuffle=True, type='InfiniteSampler'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        keep_ratio=True,
        ratio_range=(
            0.5,
            2.0,
        ),
        scale=(
            480,
            360,
        ),
        type='RandomResize'),
    dict(
        cat_max_ratio=0.75, crop_size=(
            360,
            480,
        ), type='RecordedRandomCrop'),
    dict(prob=0.5, type='RandomFlip'),
    dict(type='PhotoMetricDistortion'),
    dict(
        meta_keys=(
            'img_path',
            'seg_map_path',
            'ori_shape',
            'img_shape',
            'pad_shape',
            'scale_factor',
            'flip',
            'flip_direction',
            'reduce_zero_label',
            'crop_bbox',
        ),
        type='PackSegInputs'),
]
tta_model = dict(_scope_='mmseg', type='SegTTAModel')
val_cfg = dict(type='ValLoop')
val_dataloader = dict(
    batch_size=1,
    dataset=dict(
        data_prefix=dict(img_path='val', seg_map_path='valannot'),
        data_root='data/camvid',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(keep_ratio=True, scale=(
                480,
                360,
            ), type='Resize'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ],
        type='CamVidDataset'),
    num_workers=2,
    persistent_workers=True,
    sampler=dict(shuffle=False, type='DefaultSampler'))
val_evaluator = dict(
    iou_metrics=[
        'mIoU',
    ], type='PerClassIoUMetric')
val_interval = 4000
vis_backends = [
    dict(type='LocalVisBackend'),
]
visualizer = dict(
    _scope_='mmseg',
    name='visualizer',
    type='SegLocalVisualizer',
    vis_backends=[
        dict(type='LocalVisBackend'),
    ])
work_dir = 'work_dirs/converged/cwd-ft7000-w10_6k_seed0'
