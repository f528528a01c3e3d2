# The plain mmpretrain classifier (global average pooling + linear head) on
# the synthetic birds, with the backbone, data and schedule of
# configs/cal_r18_synthetic-birds.py. It is the demo's first stage and the
# baseline of tools/analysis_tools/compare_methods.py.
_base_ = [
    '../_base_/datasets/synthetic_birds.py',
    '../_base_/schedules/synthetic_birds_cpu.py',
    '../_base_/default_runtime.py',
]

# ResNet-18 at half width (256 channels out) with a stride-16 last stage:
# 6 x 6 feature maps at 96 px, fast enough for a CPU.
backbone = dict(
    type='ResNet',
    depth=18,
    stem_channels=32,
    base_channels=32,
    strides=(1, 2, 2, 1),
    out_indices=(3, ))

model = dict(
    type='ImageClassifier',
    backbone=backbone,
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

data_preprocessor = dict(type='ClsDataPreprocessor')
