# The built-in synthetic bird set (CUB layout), written by
# tools/dataset_converters/generate_synthetic_birds.py at 96 px.
dataset_type = 'CUBFolder'
data_root = 'data/synthetic_birds'

# Mean and std measured on the generated images (0-255 scale).
data_preprocessor = dict(
    mean=[132.9, 126.5, 120.4],
    std=[46.1, 45.1, 48.7],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageSafely'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageSafely'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
