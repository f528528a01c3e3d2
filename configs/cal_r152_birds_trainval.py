# Step 2 of the bird workflow: the final model, trained on all 3000
# labelled images (split='trainval', 15 per class) with no validation.
#
# Step 1, configs/cal_r152_birds.py, holds out 3 images per class to choose
# the epoch count and to let the plateau schedule find its lr cuts. With no
# validation here, both are fixed, read from that run:
#   - train_cfg.max_epochs: N of its best_accuracy_top1_epoch_N.pth;
#   - param_scheduler.milestones: the epochs at which its lr was cut by 10
#     (the "lr" column of its log, e.g. plotted by analyze_logs.py --keys lr).
# The values below are placeholders (the validated recipe's 60 epochs, no
# cut) until such a run exists; set yours on the command line:
#   python tools/train.py configs/cal_r152_birds_trainval.py \
#       --cfg-options train_cfg.max_epochs=42 "param_scheduler.milestones=[20,33]"
#   python tools/predict.py configs/cal_r152_birds_trainval.py \
#       work_dirs/cal_r152_birds_trainval/epoch_42.pth \
#       data/birds/testing_img_order.txt \
#       --img-root data/birds/testing_images --out answer.txt
_base_ = ['./cal_r152_birds.py']

train_dataloader = dict(dataset=dict(split='trainval'))

# No validation: the held-out images are in the training set now.
val_dataloader = None
val_evaluator = None
val_cfg = None
train_cfg = dict(max_epochs=60)

# The plateau schedule reads validation top-1; its cuts are replayed at
# fixed epochs instead.
param_scheduler = dict(
    _delete_=True, type='MultiStepLR', milestones=[], gamma=0.1,
    by_epoch=True)

# No metric to pick a best epoch: the last epoch is the model.
default_hooks = dict(checkpoint=dict(save_best=None))

# The attention pictures are drawn at validation, which no longer runs.
custom_hooks = [
    dict(type='DatasetCheckHook'),
    dict(type='NonFiniteLossHook'),
]

# tools/predict.py and the inference API take the test pipeline from here.
# Its labelled images are the base recipe's validation split, which this
# model trained on: tools/test.py on it measures training accuracy.
