# Stage 2 of the joint + limb model (issue 10, round 4): the shipped model's stage-2 fine-tune
# (x3d_shallow_penn_action_finetune.py: viewpoint, framing, noise augmentation, 12 epochs, lr 0.02)
# from the 28-epoch joint + limb model of x3d_shallow_penn_action_joints_and_limbs.py; then, as shipped,
# the 50/50 weight average of the two (weight_average.py). Only the train pipeline, the schedule, the
# starting weights and the work dir differ from that stage 1.
_base_ = 'x3d_shallow_penn_action_joints_and_limbs.py'

train_pipeline = [
    {{_base_.map_joints}},
    # (p_interval=(0.5, 1) sub-windows were tried: they made the model worse on MediaPipe poses.)
    dict(type='UniformSampleFrames', clip_len={{_base_.clip_len}}),
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
    dict(type='Resize', scale=({{_base_.size}}, {{_base_.size}}), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, left_kp={{_base_.left_kp}}, right_kp={{_base_.right_kp}}),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=True,
         skeletons={{_base_.limbs}}),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
data = dict(train=dict(dataset=dict(pipeline=train_pipeline)))
# SGD as in stage 1, at half its lr: a fine-tune of 12 passes (batch 8) from the stage-1 weights.
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0003)
total_epochs = 12
load_from = 'work_dirs/penn_action/r4/joint_limb/latest.pth'  # stage 1 (joint + limb)
work_dir = './work_dirs/penn_action/r4/joint_limb_ft'
