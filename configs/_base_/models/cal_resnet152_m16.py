# CAL on an ImageNet-initialised ResNet-152 with 16 attention maps, the
# model of the 200-class bird project. The last stage keeps stride 2
# (output stride 32: 300 px in, 10 x 10 out), as in that project.
_base_ = ['./cal_views.py']

model = dict(
    type='CALClassifier',
    backbone=dict(
        type='ResNet',
        depth=152,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        # torchvision's ResNet names its layers like mmpretrain's, so its
        # ImageNet state dict loads as is; a local file path works the same.
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet152')),
    neck=dict(
        type='BAPNeck',
        in_channels=2048,
        num_attentions=16),
    # in_channels (M x C) follows from the neck.
    head=dict(type='CALHead', num_classes=200),
    # Validation: raw image + one crop of the mean map (the reference's).
    # Testing: the paper's raw + 3 crops, and the same for the flipped image.
    test_cfg={{_base_.cal_test_views}})
