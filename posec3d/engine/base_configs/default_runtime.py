# Stand-in for mmaction2's configs/_base_/default_runtime.py, used when a user's config names
# that base file but it is not next to the config: the runtime settings PoseC3D configs rely on.
default_scope = 'mmaction'
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='auto'),
)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='nccl'))
log_level = 'INFO'
load_from = None
resume = False
