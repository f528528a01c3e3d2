# CAL on the 200-class bird set (3000 labelled images), the bird project's
# recipe: ImageNet ResNet-152, M = 16, 324 -> random 300 crops with rotation
# and flips, batch 8, SGD lr 1e-3 with a plateau schedule.
#
#   python tools/train.py configs/cal_r152_birds.py
#   python tools/test.py configs/cal_r152_birds.py \
#       work_dirs/cal_r152_birds/best_accuracy_top1_epoch_*.pth
#
# tools/test.py reports top-1 on the held-out labelled split with the
# paper's multi-crop + flip views; tools/predict.py writes answer.txt for
# the unlabelled testing_img_order.txt.
_base_ = [
    '_base_/models/cal_resnet152_m16.py',
    '_base_/datasets/birds_bs8_300.py',
    '_base_/schedules/birds_sgd_plateau.py',
    '_base_/default_runtime.py',
]

# CAL's training crop and drop (configs/_base_/models/cal_views.py), with
# the data set's normalisation.
data_preprocessor = {{_base_.cal_data_preprocessor}}

# The best epoch by validation top-1 is kept as best_accuracy_top1_*.pth;
# the periodic epoch_*.pth files rotate on their own and never replace it.
default_hooks = dict(
    checkpoint=dict(save_best='accuracy/top1', rule='greater'))

# Attention pictures of a few validation images every 5 epochs, in
# work_dir/attention/ and the visualizer's backends.
custom_hooks = [
    dict(type='DatasetCheckHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='AttentionVisualizationHook', interval=5, num_images=4),
]
