# Runtime shared by every mmcal config: mmpretrain's registries with mmcal's
# components imported into them.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmcal'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keep the best checkpoint by the validation metric; periodic saves
    # rotate separately and never replace it.
    checkpoint=dict(
        type='CheckpointHook', interval=1, save_best='auto',
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)

# Checks of the data before training and of every loss; configs that add
# hooks of their own repeat these two.
custom_hooks = [
    dict(type='DatasetCheckHook'),
    dict(type='NonFiniteLossHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # mmcal's tools start gloo themselves on machines without CUDA.
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
