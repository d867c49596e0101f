# Window-robust variant (issue 10, round 5) of x3d_shallow_penn_action.py, the stage-1 recipe: the
# same config, but every training clip is sampled inside a random sub-window of 40-100 % of the
# video (UniformSampleFrames p_interval), because `live`, the camera tab and the demo timelines
# classify 24-48-frame windows, i.e. a phase of a repetition, not the whole Penn clip the model
# otherwise sees in training. Only the train pipeline, the schedule length and the work dir differ.
_base_ = 'x3d_shallow_penn_action.py'

# The base's train pipeline, each clip sampled inside a random sub-window of 40-100 % of the video.
train_pipeline = [dict(step, p_interval=(0.4, 1.0)) if step['type'] == 'UniformSampleFrames' else step
                  for step in {{_base_.train_pipeline}}]
data = dict(train=dict(dataset=dict(pipeline=train_pipeline)))
total_epochs = 28
work_dir = './work_dirs/penn_action/r5/j_win'
