# The CI config with a small model, a deterministic training pipeline and no dropout, so that runs differing only
# in how the batch is split over processes (DDP) must give the same weights.
_base_ = 'msr_x3d_pyskl.py'
clip_len = 12
size = 24
kinect20_to_coco17 = [19, -1, -1, -1, -1, 0, 1, 7, 8, 9, 10, 4, 5, 13, 14, 15, 16]
fixed_pipeline = [
    dict(type='MapJoints', mappings={20: kinect20_to_coco17}),
    dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=1, test_mode=True),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(size, size), keep_ratio=False),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
# A narrower X3D (base 12, blocks 1-2-1) than X3D-shallow: these runs test the engine, not accuracy.
model = dict(backbone=dict(base_channels=12, stage_blocks=(1, 2, 1)), cls_head=dict(in_channels=144, dropout=0.0))
data = dict(
    videos_per_gpu=8,
    train=dict(times=1, dataset=dict(pipeline=fixed_pipeline)),
    val=dict(pipeline=fixed_pipeline),
    test=dict(pipeline=fixed_pipeline))
norm_eval = True  # BN batch statistics would differ per rank (SyncBN is CUDA-only)
total_epochs = 1
