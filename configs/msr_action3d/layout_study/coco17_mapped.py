# Joint-layout study on MSR Action3D xsub (the evidence behind configs/msr_action3d/): the
# engine's short CI recipe (X3D-shallow, 16 frames, 24 px, 6 x 2 x 36 = 216 iterations),
# COCO-17 mapped (MapJoints, eyes/ears dropped): 17 heatmaps.
# Reproduce (from the repository root, ~20 min on 2 busy CPU cores):
#   posec3d train configs/msr_action3d/layout_study/coco17_mapped.py --work-dir work_dirs/layout_coco --validate --seed 0 --device cpu
#   posec3d test configs/msr_action3d/layout_study/coco17_mapped.py work_dirs/layout_coco/latest.pth --device cpu
# Result (2 clips x flip): test top-1 16.5%, top-5 57.9%.
ann_file = '../shared/data/datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl'
kinect20_to_coco17 = [19, -1, -1, -1, -1, 0, 1, 7, 8, 9, 10, 4, 5, 13, 14, 15, 16]
left_kp = [1, 3, 5, 7, 9, 11, 13, 15]
right_kp = [2, 4, 6, 8, 10, 12, 14, 16]
clip_len = 16
size = 24

model = dict(
    type='Recognizer3D',
    backbone=dict(type='X3D', gamma_d=1, in_channels=17, base_channels=24, num_stages=3, se_ratio=None,
                  use_swish=False, stage_blocks=(2, 5, 3), spatial_strides=(2, 2, 2)),
    cls_head=dict(type='I3DHead', in_channels=216, num_classes=20, dropout=0.5),
    test_cfg=dict(average_clips='prob'))

map_joints = dict(type='MapJoints', mappings={20: kinect20_to_coco17}, drop=[1, 2, 3, 4])
train_pipeline = [
    map_joints,
    dict(type='UniformSampleFrames', clip_len=clip_len),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(-1, 28)),
    dict(type='RandomResizedCrop', area_range=(0.56, 1.0)),
    dict(type='Resize', scale=(size, size), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, left_kp=left_kp, right_kp=right_kp),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
val_pipeline = [
    map_joints,
    dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=1, test_mode=True),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(size, size), keep_ratio=False),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
test_pipeline = [
    map_joints,
    dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=2, test_mode=True),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(size, size), keep_ratio=False),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=False,
         double=True, left_kp=left_kp, right_kp=right_kp),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
data = dict(
    videos_per_gpu=16,
    workers_per_gpu=0,
    test_dataloader=dict(videos_per_gpu=4),
    val_dataloader=dict(videos_per_gpu=16),
    train=dict(type='RepeatDataset', times=2,
               dataset=dict(type='PoseDataset', ann_file=ann_file, split='xsub_train', pipeline=train_pipeline)),
    val=dict(type='PoseDataset', ann_file=ann_file, split='xsub_test', pipeline=val_pipeline),
    test=dict(type='PoseDataset', ann_file=ann_file, split='xsub_test', pipeline=test_pipeline))
optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0003)
optimizer_config = dict(grad_clip=dict(max_norm=40, norm_type=2))
lr_config = dict(policy='CosineAnnealing', by_epoch=False, min_lr=0)
total_epochs = 6
checkpoint_config = dict(interval=1, max_keep_ckpts=2)
evaluation = dict(interval=1, metrics=['top_k_accuracy', 'mean_class_accuracy'])
log_config = dict(interval=10)
seed = 0
