# Window-robust variant (issue 10, round 5) of x3d_shallow_penn_action_joints_and_limbs.py (17 joint +
# 14 limb channels): every training clip is sampled inside a random sub-window of 40-100 % of the
# video (UniformSampleFrames p_interval), because `live`, the camera tab and the demo timelines
# classify 24-48-frame windows, not whole Penn clips. Only the train pipeline and the work dir differ.
_base_ = 'x3d_shallow_penn_action_joints_and_limbs.py'

# The base's train pipeline, each clip sampled inside a random sub-window of 40-100 % of the video.
train_pipeline = [dict(step, p_interval=(0.4, 1.0)) if step['type'] == 'UniformSampleFrames' else step
                  for step in {{_base_.train_pipeline}}]
data = dict(train=dict(dataset=dict(pipeline=train_pipeline)))
work_dir = './work_dirs/penn_action/r5/jl_win'
