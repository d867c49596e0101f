# Outlier exposure for the `penn-action` model (issue 10, "unknown"): fine-tune the shipped weights
# (16 frames x 28x28, the stage-2 augmentations) with 822 clips of actions that are no Penn class
# (configs/penn_action/make_outliers.py: MSR Action3D, UTKinect, JHMDB; research-only data used for
# training, never shipped). On them the head learns a uniform output (Hendrycks et al., ICLR 2019,
# weight 0.5), so that real clips of other actions score a low top probability and are reported
# unknown. Runs and figures: docs/penn_action_model.md.
_base_ = 'x3d_shallow_penn_action_finetune.py'

outliers = dict(ann_file='work_dirs/penn_action/penn_outliers.pkl', split='outlier', weight=0.5)
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0003)
total_epochs = 6
load_from = 'work_dirs/penn_action/soup/final.pth'  # the shipped weights (0.5 stage 1 + 0.5 stage 2)
work_dir = './work_dirs/penn_action/x3d_outliers'
