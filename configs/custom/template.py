# Template: train PoseC3D on your own videos. Copy this file, edit the lines marked EDIT, then
#   posec3d train configs/custom/my_dataset.py
#
# 1. Make the annotation pickle (COCO-17 2D poses, one dict with 'split' and 'annotations') from
#    lists of 'video_path<TAB>label' lines, one list per split (split name = list file stem):
#      posec3d build-dataset train.txt val.txt -o data/custom/my_dataset.pkl --label-map labels.txt
#    or convert existing skeletons: `posec3d convert csv|ntu-skeleton|taekwondo ... -o ...`.
#    Check it with `posec3d info data/custom/my_dataset.pkl` and look at a few samples with
#    `posec3d vis data/custom/my_dataset.pkl -o work_dirs/vis --limit 5 --label-map labels.txt`.
# 2. Set num_classes, ann_file and the split names below.
# 3. Pick a recipe:
#    - the default: SlowOnly-R50 fine-tuned from the Kinetics-400 checkpoint (`posec3d download
#      k400-posec3d`, then `--load-from k400-posec3d`) with lr 0.0125 per 16 videos;
#    - a few hundred clips from scratch on a CPU: the X3D-shallow backbone below (uncomment it)
#      with lr 0.05 per 16 videos;
#    - lr scales linearly with the total batch (videos_per_gpu x number of GPUs).

num_classes = 10  # EDIT: number of lines in your label map

model = dict(
    type='Recognizer3D',
    # SlowOnly-R50 with stages 3-4-6: the backbone of the Kinetics-400 PoseC3D checkpoint, so
    #   posec3d download k400-posec3d
    #   posec3d train configs/custom/my_dataset.py --load-from k400-posec3d
    # fine-tunes from it (the 400-way classifier is skipped; everything else must fit).
    backbone=dict(
        type='ResNet3dSlowOnly', in_channels=17, base_channels=32, num_stages=3, out_indices=(2, ),
        stage_blocks=(3, 4, 6), conv1_stride=(1, 1), pool1_stride=(1, 1), inflate=(0, 1, 1),
        spatial_strides=(2, 2, 2), temporal_strides=(1, 1, 2)),
    cls_head=dict(type='I3DHead', in_channels=512, num_classes=num_classes, dropout=0.5),
    # A few hundred clips trained from scratch on a CPU: X3D-shallow (0.24 M parameters) instead,
    # with lr 0.05 per 16 videos below.
    # backbone=dict(
    #     type='X3D', gamma_d=1, in_channels=17, base_channels=24, num_stages=3, se_ratio=None,
    #     use_swish=False, stage_blocks=(2, 5, 3), spatial_strides=(2, 2, 2)),
    # cls_head=dict(type='I3DHead', in_channels=216, num_classes=num_classes, dropout=0.5),
    test_cfg=dict(average_clips='prob'))

dataset_type = 'PoseDataset'
ann_file = 'data/custom/my_dataset.pkl'  # EDIT
train_split, val_split = 'train', 'val'  # EDIT: split names in your pickle
clip_len = 48  # frames per clip; shorter videos are looped
left_kp = [1, 3, 5, 7, 9, 11, 13, 15]
right_kp = [2, 4, 6, 8, 10, 12, 14, 16]
# Other joint layouts: put dict(type='MapJoints', mappings={V: [source index or -1] * 17}) first
# in each pipeline (see configs/msr_action3d/ and posec3d/data/skeletons.py for index maps).
train_pipeline = [
    dict(type='UniformSampleFrames', clip_len=clip_len),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='RandomResizedCrop', area_range=(0.56, 1.0)),
    dict(type='Resize', scale=(56, 56), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, left_kp=left_kp, right_kp=right_kp),
    dict(type='GeneratePoseTarget', with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
val_pipeline = [
    dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=1),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='GeneratePoseTarget', with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs'])
]
# Test: 10 clips, each also flipped (20 views per video), probabilities averaged.
test_pipeline = [
    dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=10),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='GeneratePoseTarget', with_kp=True, with_limb=False, double=True, left_kp=left_kp,
         right_kp=right_kp),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs'])
]
data = dict(
    videos_per_gpu=16,  # EDIT for your memory
    workers_per_gpu=2,
    test_dataloader=dict(videos_per_gpu=1),
    train=dict(
        type='RepeatDataset',
        times=10,  # one "epoch" = 10 passes over the training split
        dataset=dict(type=dataset_type, ann_file=ann_file, split=train_split, pipeline=train_pipeline)),
    val=dict(type=dataset_type, ann_file=ann_file, split=val_split, pipeline=val_pipeline),
    test=dict(type=dataset_type, ann_file=ann_file, split=val_split, pipeline=test_pipeline))

optimizer = dict(type='SGD', lr=0.0125, momentum=0.9, weight_decay=0.0003)  # for 16 videos per step
optimizer_config = dict(grad_clip=dict(max_norm=40, norm_type=2))
lr_config = dict(policy='CosineAnnealing', by_epoch=False, min_lr=0)
total_epochs = 12
checkpoint_config = dict(interval=1)
evaluation = dict(interval=1, metrics=['top_k_accuracy', 'mean_class_accuracy'], topk=(1, 5))
log_config = dict(interval=20, hooks=[dict(type='TextLoggerHook')])
log_level = 'INFO'
# K400 fine-tuning: `posec3d download k400-posec3d`, then `--load-from k400-posec3d` on the command
# line or load_from = 'k400-posec3d' here (loaded non-strictly: the 400-way classifier is skipped).
load_from = None
resume_from = None
work_dir = './work_dirs/custom/my_dataset'  # EDIT
