# CAL as in the paper's CUB-200-2011 experiments: ImageNet-initialised
# ResNet-101 whose last stage keeps stride 1 (output stride 16: 448 px in,
# 28 x 28 out) and 32 attention maps.
_base_ = ['./cal_views.py']

model = dict(
    type='CALClassifier',
    backbone=dict(
        type='ResNet',
        depth=101,
        num_stages=4,
        strides=(1, 2, 2, 1),
        out_indices=(3, ),
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')),
    neck=dict(
        type='BAPNeck',
        in_channels=2048,
        num_attentions=32),
    # in_channels (M x C) follows from the neck.
    head=dict(type='CALHead', num_classes=200),
    test_cfg={{_base_.cal_test_views}})
