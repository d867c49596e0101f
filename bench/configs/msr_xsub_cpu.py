# MSR Action3D cross-subject, sized for a shared 2-core CPU (bench figure, not a zoo recipe): the repo's X3D-shallow
# config (native 20 Kinect joints, in_channels=20) with 12-frame 32x32 heatmaps, deterministic
# (test-mode) frame sampling plus random flips for training (random crops need far more epochs at
# this size), batch 16, lr 0.1 cosine, 30 epochs; test 10 clips x flip.
_base_ = '../../configs/msr_action3d/x3d_shallow_xsub.py'
left_kp = [0, 4, 7, 9, 11, 13, 15, 17]
right_kp = [1, 5, 8, 10, 12, 14, 16, 18]
clip_len = 12
size = 32


def _pipeline(num_clips, train=False, double=False):
    steps = [
        dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=num_clips, test_mode=True),
        dict(type='PoseDecode'),
        dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
        dict(type='Resize', scale=(size, size), keep_ratio=False),
    ]
    if train:
        steps.append(dict(type='Flip', flip_ratio=0.5, left_kp=left_kp, right_kp=right_kp))
    target = dict(type='GeneratePoseTarget', with_kp=True, with_limb=False)
    if double:
        target.update(double=True, left_kp=left_kp, right_kp=right_kp)
    return steps + [target, dict(type='FormatShape', input_format='NCTHW_Heatmap'),
                    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
                    dict(type='ToTensor', keys=['imgs', 'label'])]


data = dict(
    workers_per_gpu=1,
    test_dataloader=dict(videos_per_gpu=8),
    val_dataloader=dict(videos_per_gpu=32),
    train=dict(times=1, dataset=dict(pipeline=_pipeline(1, train=True))),
    val=dict(pipeline=_pipeline(1)),
    test=dict(pipeline=_pipeline(10, double=True)))
optimizer = dict(lr=0.1)
total_epochs = 30
work_dir = './work_dirs/bench/msr_xsub_cpu'
