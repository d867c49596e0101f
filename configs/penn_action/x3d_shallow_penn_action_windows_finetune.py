# Stage 2 of the window-robust variant (issue 10, round 5): the viewpoint / framing / noise
# fine-tune of round 2 (x3d_shallow_penn_action_finetune.py), with training clips sampled inside
# random sub-windows of 40-100 % of the video (UniformSampleFrames p_interval) as in its stage 1
# (x3d_shallow_penn_action_windows.py), loaded from that stage 1. Only the train pipeline, the
# starting weights and the work dir differ from the base.
_base_ = 'x3d_shallow_penn_action_finetune.py'

# The base's train pipeline, each clip sampled inside a random sub-window of 40-100 % of the video.
train_pipeline = [dict(step, p_interval=(0.4, 1.0)) if step['type'] == 'UniformSampleFrames' else step
                  for step in {{_base_.train_pipeline}}]
data = dict(train=dict(dataset=dict(pipeline=train_pipeline)))
load_from = 'work_dirs/penn_action/r5/j_win/latest.pth'  # stage 1 (window-robust)
work_dir = './work_dirs/penn_action/r5/j_win_ft'
