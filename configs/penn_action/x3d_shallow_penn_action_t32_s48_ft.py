# The larger input (32 frames x 48x48) reached by fine-tuning instead of from scratch: the network is
# fully convolutional with a global pool, so the shipped 16 x 28x28 weights load unchanged and only
# have to adapt to bigger, sharper heatmaps and a finer time step. From scratch, the 32x48 run learned
# too slowly for this CPU (val_part 1-view 0.18-0.20 after 3 epochs of 4-9 min each; stopped).
# Runs and figures: docs/penn_action_model.md.
_base_ = 'x3d_shallow_penn_action_t32_s48.py'

optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0003)
total_epochs = 5
load_from = 'work_dirs/penn_action/soup/final.pth'  # the shipped weights (0.5 stage 1 + 0.5 stage 2)
work_dir = './work_dirs/penn_action/x3d_t32_s48_ft'
