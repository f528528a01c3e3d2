# A short CPU schedule for the synthetic birds: SGD; the lr rises linearly
# from a tenth over the first epoch (over the first half of a run shorter
# than 2 epochs), then decays by a half cosine to the end of the run, at
# every iteration. mmcal's LinearWarmUpCosineLR takes the run's length from
# train_cfg.max_epochs, so any max_epochs >= 1 works.
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4, fused=True))
param_scheduler = dict(
    type='LinearWarmUpCosineLR',
    warmup=1,
    start_factor=0.1,
    by_epoch=True,
    convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# The lr is set for the loaders' batch of 16 on one process
# (configs/_base_/datasets/synthetic_birds.py); `tools/train.py
# --auto-scale-lr` rescales it for another global batch.
auto_scale_lr = dict(base_batch_size=16, enable=False)
