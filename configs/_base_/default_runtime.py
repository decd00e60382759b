_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=3, save_last=True),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    visualization=dict(type='SegVisualizationHook', draw=False, interval=50),
    # stops a diverged run (NaN/inf loss) before that iteration's checkpoint; a default hook, not
    # a custom one, so recipes that set their own custom_hooks keep it
    non_finite_loss=dict(type='NonFiniteLossHook'),
    # a train line at the last iteration (short runs, a short --resume)
    final_train_log=dict(type='FinalTrainLogHook'),
    # `--show-dir` draws every test image (mmseg's hook alone: every 50th, also under mim test)
    test_visualization=dict(type='TestVisualizationIntervalHook', interval=1),
    # logs the optimizer / schedule / data a distillation recipe uses vs its student config's
    recipe_settings=dict(type='RecipeSettingsHook'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
