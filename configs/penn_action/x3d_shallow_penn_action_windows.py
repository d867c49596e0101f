# Window-robust variant (issue 10, round 5) of x3d_shallow_penn_action.py, the stage-1 recipe: the
# same config, but every training clip is sampled inside a random sub-window of 40-100 % of the
# video (UniformSampleFrames p_interval), because `live`, the camera tab and the demo timelines
# classify 24-48-frame windows, i.e. a phase of a repetition, not the whole Penn clip the model
# otherwise sees in training. Only the train pipeline, the schedule length and the work dir differ.
_base_ = 'x3d_shallow_penn_action.py'

# (the base's names the train pipeline uses: a config file cannot read its base's variables)
penn_to_coco17 = [0, -1, -1, -1, -1, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11]
face_points = [1, 2, 3, 4]
left_kp = [1, 3, 5, 7, 9, 11, 13, 15]
right_kp = [2, 4, 6, 8, 10, 12, 14, 16]
clip_len = 16
size = 28
map_joints = dict(type='MapJoints', mappings={13: penn_to_coco17}, drop=face_points)
train_pipeline = [
    map_joints,
    dict(type='UniformSampleFrames', clip_len=clip_len, p_interval=(0.4, 1.0)),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(-1, 36)),
    # Estimator-like noise on the clean annotated joints (jitter ~1.5% of the box, soft scores, drops).
    dict(type='PoseNoise', jitter=0.015, score_range=(0.6, 1.0), joint_drop=0.03, frame_drop=0.03),
    dict(type='RandomResizedCrop', area_range=(0.56, 1.0)),
    dict(type='Resize', scale=(size, size), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, left_kp=left_kp, right_kp=right_kp),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
data = dict(train=dict(dataset=dict(pipeline=train_pipeline)))
total_epochs = 28
work_dir = './work_dirs/penn_action/r5/j_win'
