# CAL on the built-in synthetic bird set, small enough for a CPU (make demo).
# Generate the data first:
#   python tools/dataset_converters/generate_synthetic_birds.py \
#       --out data/synthetic_birds --num-classes 10 --per-class 80
# From scratch CAL learns slowly (the x100 logit scale); the demo
# (tools/demo.py) first trains configs/synthetic/plain_r18_synthetic-birds.py
# and starts this config's backbone from that checkpoint:
#   --cfg-options model.backbone.init_cfg.checkpoint=<plain checkpoint>
_base_ = [
    '_base_/models/resnet18_half_stride16.py',
    '_base_/models/cal_views.py',
    '_base_/datasets/synthetic_birds.py',
    '_base_/schedules/synthetic_birds_cpu.py',
    '_base_/default_runtime.py',
]

model = dict(
    type='CALClassifier',
    neck=dict(type='BAPNeck', in_channels=256, num_attentions=8),
    head=dict(type='CALHead', num_classes=10),
    # Validation: raw + one crop (the reference's); testing adds the
    # paper's three crops and the flip.
    test_cfg={{_base_.cal_test_views}})
data_preprocessor = {{_base_.cal_data_preprocessor}}

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=1e-5))
train_cfg = dict(max_epochs=6)

custom_hooks = [
    dict(type='DatasetCheckHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='AttentionVisualizationHook', interval=3, num_images=4),
]
