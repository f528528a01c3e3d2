# NABirds (555 classes) with the CAL paper's CUB-200-2011 recipe: ImageNet
# ResNet-101 at output stride 16, M = 32, 448 px crops, SGD lr 1e-3 for a
# global batch of 16 decayed x 0.9 every 2 epochs (per iteration), 160
# epochs, BatchNorm synchronised across GPUs. The CAL paper reports no
# NABirds result; TransFG reports 90.8 top-1 (ViT), FGVC-PIM 92.8 (Swin-L).
#
#   bash tools/dist_train.sh configs/cal_r101_nabirds_448.py 4
# With another global batch, add --auto-scale-lr to rescale lr linearly.
_base_ = [
    '_base_/models/cal_resnet101_stride16_m32.py',
    '_base_/datasets/nabirds_bs4_448.py',
    '_base_/schedules/cub_sgd_exp_160e.py',
    '_base_/default_runtime.py',
]

# The species (and sex, age or plumage variants) that label images.
model = dict(head=dict(num_classes=555))

# CAL's training crop and drop (configs/_base_/models/cal_views.py), with
# the data set's normalisation.
data_preprocessor = {{_base_.cal_data_preprocessor}}

# Every BatchNorm (backbone and attention layer) becomes SyncBatchNorm when
# training is distributed; a single process keeps plain BatchNorm.
sync_bn = 'torch'

# Keep the best epoch by validation top-1 (best_accuracy_top1_*.pth).
default_hooks = dict(
    checkpoint=dict(save_best='accuracy/top1', rule='greater'))
