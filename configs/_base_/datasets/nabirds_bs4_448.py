# NABirds with the CAL paper's CUB-200-2011 pipelines: 512 x 512 resize,
# random 448 crop, horizontal flip and colour jitter; testing on a centre
# 448 crop.
# mmcal's NABirds: the official layout, its annotation files checked; the
# classes are the 555 taxonomy nodes that label images.
dataset_type = 'NABirds'
data_root = 'data/nabirds'

# ImageNet statistics (RGB, 0-255), those of the pretrained backbone.
data_preprocessor = dict(
    num_classes=555,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageSafely'),
    dict(type='Resize', scale=(512, 512)),
    dict(type='RandomCrop', crop_size=448),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ColorJitter', brightness=0.126, saturation=0.5),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageSafely'),
    dict(type='Resize', scale=(512, 512)),
    dict(type='CenterCrop', crop_size=448),
    dict(type='PackInputs'),
]

# 4 images per GPU: the paper's global batch of 16 is 4 GPUs x 4.
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))

val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
