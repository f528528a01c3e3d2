# The CAL paper's CUB schedule: SGD, lr 1e-3 for a global batch of 16,
# lr = 1e-3 * 0.9 ** (epoch / 2) updated at every iteration, 160 epochs.
# fused: torch's one-kernel SGD, the same update in one pass over the weights.
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=1e-3, momentum=0.9, weight_decay=1e-5, fused=True))

# gamma per epoch is 0.9 ** (1 / 2). Converted to iterations, mmcal's
# ContinuousExponentialLR applies gamma ** (1 / iterations per epoch) at each
# iteration (mmengine's ExponentialLR would apply gamma at each iteration).
param_scheduler = dict(
    type='ContinuousExponentialLR',
    gamma=0.9**0.5,
    by_epoch=True,
    convert_to_iter_based=True)

train_cfg = dict(by_epoch=True, max_epochs=160, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `tools/train.py --auto-scale-lr` rescales lr for another global batch.
auto_scale_lr = dict(base_batch_size=16, enable=False)
