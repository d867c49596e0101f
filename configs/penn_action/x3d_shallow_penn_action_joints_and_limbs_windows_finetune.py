# Stage 2 of the window-robust variant (issue 10, round 5): the viewpoint / framing / noise
# fine-tune of round 2, with training clips sampled inside random sub-windows of 40-100 % of the
# video (UniformSampleFrames p_interval) as in its stage 1, loaded from that stage 1.
#
# Stage 2 of the joint + limb model (issue 10, round 4): the shipped model's stage-2 fine-tune
# (x3d_shallow_penn_action_finetune.py: viewpoint, framing, noise augmentation, 12 epochs, lr 0.02)
# from the 28-epoch joint + limb model of x3d_shallow_penn_action_joints_and_limbs.py; then, as shipped,
# the 50/50 weight average of the two (weight_average.py).
#
# Stage 2 of the bundled `penn-action` model: fine-tune the 20-epoch model of
# x3d_shallow_penn_action.py (stage 1, same network and test pipeline) for 12 epochs with viewpoint,
# framing, noise augmentation; the shipped weights are then the 50/50 average of stage 1 and this
# run (weight_average.py, WiSE-FT). Recipe, runs and figures: docs/penn_action_model.md.
#
# X3D-shallow PoseC3D for Penn Action (15 classes), the bundled `penn-action` model.
#
# Input is what the embedded MediaPipe estimator produces: COCO-17 keypoints. Penn Action's 13
# ground-truth joints are put into the COCO-17 slots inside the pipeline (MapJoints), so the
# same config evaluates Penn pickles (V=13) and classifies MediaPipe poses (V=17).
# Penn's odd indices are the subject's RIGHT side (see shared/data/README.md), hence the map
# below: COCO left_shoulder (5) <- Penn 2, right_shoulder (6) <- Penn 1, and so on.
# The eyes and ears (COCO 1-4) do not exist in Penn, so they are dropped for every input,
# MediaPipe's included: training and inference then see the same 13 points.
#

# Training data: `python configs/penn_action/make_splits.py` writes the split file below
# (train = official training split; train_part / val_part = a stratified 85/15 carve-out).

penn_to_coco17 = [0, -1, -1, -1, -1, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11]
face_points = [1, 2, 3, 4]
left_kp = [1, 3, 5, 7, 9, 11, 13, 15]
right_kp = [2, 4, 6, 8, 10, 12, 14, 16]
clip_len = 16
size = 28
# (0,5) (0,6) head-shoulders, arms, shoulder-hip, legs, the hip line, the shoulder line.
limbs = [[0, 5], [0, 6], [5, 7], [7, 9], [6, 8], [8, 10], [5, 11], [11, 13], [13, 15], [6, 12],
         [12, 14], [14, 16], [11, 12], [5, 6]]
left_limb = [0, 2, 3, 6, 7, 8]
right_limb = [1, 4, 5, 9, 10, 11]

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='X3D', gamma_d=1, in_channels=17 + len(limbs), base_channels=24, num_stages=3,
        se_ratio=None, use_swish=False, stage_blocks=(2, 5, 3), spatial_strides=(2, 2, 2)),
    cls_head=dict(type='I3DHead', in_channels=216, num_classes=15, dropout=0.5),
    test_cfg=dict(average_clips='prob'))

dataset_type = 'PoseDataset'
ann_file = 'work_dirs/penn_action/penn_action_splits.pkl'
map_joints = dict(type='MapJoints', mappings={13: penn_to_coco17}, drop=face_points)
train_pipeline = [
    map_joints,
    dict(type='UniformSampleFrames', clip_len=clip_len, p_interval=(0.4, 1.0)),
    dict(type='PoseDecode'),
    # A different camera (roll, tilt, distance) and tight framing (close-ups that cut the body,
    # joints put on the border with low scores as BlazePose does), before the crop to the person.
    dict(type='RandomAffine', rotate=20., scale=(0.85, 1.15), aspect=(0.8, 1.25), shear=12.),
    dict(type='FramingCut', p=0.3, cut=(0.1, 0.4), side_weights=(0.4, 0.3, 0.15, 0.15)),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(-1, 36)),
    # Estimator-like noise on the clean annotated joints (jitter ~2% of the box, soft scores, drops).
    dict(type='PoseNoise', jitter=0.02, score_range=(0.5, 1.0), joint_drop=0.05, frame_drop=0.05),
    dict(type='RandomResizedCrop', area_range=(0.56, 1.0)),
    dict(type='Resize', scale=(size, size), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, left_kp=left_kp, right_kp=right_kp),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=True,
         skeletons=limbs),
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
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=True,
         skeletons=limbs),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs'])
]
test_pipeline = [
    map_joints,
    dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=10, test_mode=True),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(size, size), keep_ratio=False),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=True,
         skeletons=limbs, double=True, left_kp=left_kp, right_kp=right_kp, left_limb=left_limb,
         right_limb=right_limb),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs'])
]
data = dict(
    videos_per_gpu=8,
    workers_per_gpu=1,
    test_dataloader=dict(videos_per_gpu=1),
    train=dict(
        type='RepeatDataset',
        times=1,
        dataset=dict(type=dataset_type, ann_file=ann_file, split='train_part', pipeline=train_pipeline)),
    val=dict(type=dataset_type, ann_file=ann_file, split='val_part', pipeline=val_pipeline),
    test=dict(type=dataset_type, ann_file=ann_file, split='val_part', pipeline=test_pipeline))
# SGD as in stage 1, at half its lr: a fine-tune of 12 passes (batch 8) from the stage-1 weights.
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0003)
optimizer_config = dict(grad_clip=dict(max_norm=40, norm_type=2))
lr_config = dict(policy='CosineAnnealing', by_epoch=False, min_lr=0)
total_epochs = 12
checkpoint_config = dict(interval=1)
evaluation = dict(interval=1, metrics=['top_k_accuracy', 'mean_class_accuracy'])
log_config = dict(interval=10, hooks=[dict(type='TextLoggerHook')])
log_level = 'INFO'
load_from = 'work_dirs/penn_action/r5/jl_win/latest.pth'  # stage 1 (window-robust)
resume_from = None
work_dir = './work_dirs/penn_action/r5/jl_win_ft'
