# The plain mmpretrain classifier (global average pooling + linear head) on
# the synthetic birds, with the backbone, data and schedule of
# configs/cal_r18_synthetic-birds.py. It is the demo's first stage and the
# baseline of tools/analysis_tools/compare_methods.py.
_base_ = [
    '../_base_/models/resnet18_half_stride16.py',
    '../_base_/datasets/synthetic_birds.py',
    '../_base_/schedules/synthetic_birds_cpu.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

data_preprocessor = dict(type='ClsDataPreprocessor')
