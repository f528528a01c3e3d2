# The 200-class bird set (classes.txt, training_labels.txt,
# testing_img_order.txt), read by mmcal's BirdSet: 'train' and 'val' are a
# fixed stratified split of the labelled images; the unlabelled test list
# is predicted by tools/predict.py.
dataset_type = 'BirdSet'
data_root = 'data/birds'

# The set's own statistics, measured on its training images (0-1 scale:
# mean 0.48194, 0.49756, 0.43214; std 0.13271, 0.12794, 0.17289), in RGB
# order and scaled to the 0-255 pixels the preprocessor sees.
data_preprocessor = dict(
    num_classes=200,
    mean=[0.48194 * 255, 0.49756 * 255, 0.43214 * 255],
    std=[0.13271 * 255, 0.12794 * 255, 0.17289 * 255],
    to_rgb=True)

# The bird project resized PIL images with torchvision (PIL's bilinear
# filter, which widens its support when shrinking); mmcv's default OpenCV
# backend samples 2x2 pixels and aliases on the downscale, so the resizes
# use Pillow to see the images the project's models saw.
train_pipeline = [
    dict(type='LoadImageSafely'),
    dict(type='Resize', scale=(324, 324), backend='pillow'),
    # Angle uniform in [-20, 20] degrees: a magnitude uniform in [0, 20]
    # ('inf' std), negated with probability 0.5; nearest-neighbour with a
    # black border, like torchvision's RandomRotation(20).
    dict(
        type='Rotate',
        magnitude_level=10,
        magnitude_range=(0, 20),
        magnitude_std='inf',
        total_level=10,
        prob=1.0,
        random_negative_prob=0.5,
        pad_val=0,
        interpolation='nearest'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=300),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageSafely'),
    dict(type='Resize', scale=(324, 324), backend='pillow'),
    dict(type='CenterCrop', crop_size=300),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))

val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))

# The unlabelled images have no accuracy: tools/test.py measures the
# held-out labelled split.
test_dataloader = val_dataloader
test_evaluator = val_evaluator
