# PoseC3D, X3D-shallow, JHMDB split 1, the 14-class subset with ground-truth puppet joints
# (433 train / 176 test clips; DD-Net's files, see ../shared/data/datasets/jhmdb14_ddnet/README).
# Not comparable with 21-class JHMDB results. Label map label_map_jhmdb14.txt.
# Keypoints live on a pseudo 320x240 canvas (scale-normalised), which PoseCompact crops anyway.
# Joints: the 15 puppet joints are mapped to COCO-17 inside the pipeline (MapJoints; the face point
# becomes the nose, eyes and ears are dropped for every input). Unlike the Kinect datasets (see
# configs/msr_action3d/, where the native layout trained far better), the mapping only loses neck
# and belly, and the model then also classifies COCO-17 poses from `posec3d extract`.
# Small-data recipe: X3D-shallow (0.24 M parameters), 32-frame clips, 48x48 training crops /
# 56x56 test, batch 16 on one process, lr 0.05 (pyskl's 0.4 is for 8x32 videos), 12 epochs of 10
# repeats. Run from the repository root (ann_file is relative to it).

jhmdb_to_coco17 = [2, -1, -1, -1, -1, 4, 3, 8, 7, 12, 11, 6, 5, 10, 9, 14, 13]
face_points = [1, 2, 3, 4]
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='X3D',
        gamma_d=1,
        in_channels=17,
        base_channels=24,
        num_stages=3,
        se_ratio=None,
        use_swish=False,
        stage_blocks=(2, 5, 3),
        spatial_strides=(2, 2, 2)),
    cls_head=dict(type='I3DHead', in_channels=216, num_classes=14, dropout=0.5),
    test_cfg=dict(average_clips='prob'))

dataset_type = 'PoseDataset'
ann_file = '../shared/data/datasets/jhmdb14_ddnet/jhmdb14_gt15_2d_pseudocanvas.pkl'
left_kp = [1, 3, 5, 7, 9, 11, 13, 15]
right_kp = [2, 4, 6, 8, 10, 12, 14, 16]
train_pipeline = [
    dict(type='MapJoints', mappings={15: jhmdb_to_coco17}, drop=face_points),
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
    dict(type='MapJoints', mappings={15: jhmdb_to_coco17}, drop=face_points),
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
    dict(type='MapJoints', mappings={15: jhmdb_to_coco17}, drop=face_points),
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
        dataset=dict(type=dataset_type, ann_file=ann_file, split='split1_train', pipeline=train_pipeline)),
    val=dict(type=dataset_type, ann_file=ann_file, split='split1_test', pipeline=val_pipeline),
    test=dict(type=dataset_type, ann_file=ann_file, split='split1_test', pipeline=test_pipeline))

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
work_dir = './work_dirs/jhmdb/x3d_shallow_split1'
