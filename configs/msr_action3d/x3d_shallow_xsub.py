# PoseC3D, X3D-shallow, MSR Action3D cross-subject (Wang et al. 2012 protocol: subjects 1,3,5,7,9
# train, 2,4,6,8,10 test; 284 / 273 sequences), 20 classes, Kinect v1 skeletons projected to 2D.
# Data: ../shared/data/datasets/msr_action3d/ (see its README); label_map_msr_action3d.txt.
# Joints: the native 20-joint Kinect v1 layout (MSR order): 20 joint heatmaps, flip pairs from
# the joint names. It trained clearly better than mapping to COCO-17 with MapJoints (which drops
# hands, feet, spine and hip/shoulder centres): on MSR Action3D xsub, same short recipe (X3D-shallow,
# 16 frames, 24 px, 216 iterations, seed 0), test top-1 34.8% native vs 16.5% COCO-17 mapped.
# Consequence: the model takes Kinect-20 skeletons in this order, not COCO-17 poses from
# `posec3d extract`; for that, use MapJoints as in configs/jhmdb/.
# Small-data recipe: X3D-shallow (0.24 M parameters), 32-frame clips, 48x48 training crops /
# 56x56 test, batch 16 on one process, lr 0.05 (pyskl's 0.4 is for 8x32 videos), 12 epochs of 10
# repeats. Run from the repository root (ann_file is relative to it).

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='X3D',
        gamma_d=1,
        in_channels=20,
        base_channels=24,
        num_stages=3,
        se_ratio=None,
        use_swish=False,
        stage_blocks=(2, 5, 3),
        spatial_strides=(2, 2, 2)),
    cls_head=dict(type='I3DHead', in_channels=216, num_classes=20, dropout=0.5),
    test_cfg=dict(average_clips='prob'))

dataset_type = 'PoseDataset'
ann_file = '../shared/data/datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl'
left_kp = [0, 4, 7, 9, 11, 13, 15, 17]
right_kp = [1, 5, 8, 10, 12, 14, 16, 18]
train_pipeline = [
    dict(type='UniformSampleFrames', clip_len=32),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='RandomResizedCrop', area_range=(0.56, 1.0)),
    dict(type='Resize', scale=(48, 48), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, left_kp=left_kp, right_kp=right_kp),
    dict(type='GeneratePoseTarget', with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
val_pipeline = [
    dict(type='UniformSampleFrames', clip_len=32, num_clips=1),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(56, 56), keep_ratio=False),
    dict(type='GeneratePoseTarget', with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs'])
]
test_pipeline = [
    dict(type='UniformSampleFrames', clip_len=32, num_clips=10),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(56, 56), keep_ratio=False),
    dict(type='GeneratePoseTarget', with_kp=True, with_limb=False, double=True, left_kp=left_kp, right_kp=right_kp),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs'])
]
data = dict(
    videos_per_gpu=16,
    workers_per_gpu=2,
    test_dataloader=dict(videos_per_gpu=1),
    train=dict(
        type='RepeatDataset',
        times=10,
        dataset=dict(type=dataset_type, ann_file=ann_file, split='xsub_train', pipeline=train_pipeline)),
    val=dict(type=dataset_type, ann_file=ann_file, split='xsub_test', pipeline=val_pipeline),
    test=dict(type=dataset_type, ann_file=ann_file, split='xsub_test', pipeline=test_pipeline))

# optimizer: lr is for 8 GPUs x videos_per_gpu; scale it linearly with the total batch
optimizer = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0003)
optimizer_config = dict(grad_clip=dict(max_norm=40, norm_type=2))
# learning policy
lr_config = dict(policy='CosineAnnealing', by_epoch=False, min_lr=0)
total_epochs = 12
checkpoint_config = dict(interval=1)
evaluation = dict(interval=1, metrics=['top_k_accuracy', 'mean_class_accuracy'], topk=(1, 5))
log_config = dict(interval=20, hooks=[dict(type='TextLoggerHook')])

# runtime settings
log_level = 'INFO'
load_from = None
resume_from = None
work_dir = './work_dirs/msr_action3d/x3d_shallow_xsub'
