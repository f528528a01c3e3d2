# SGD at lr 1e-3, cut by 10 when validation top-1 has not improved for 5
# epochs (the bird project's plateau schedule).
# fused: torch's one-kernel SGD, the same update in one pass over the weights.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, fused=True))

param_scheduler = dict(
    type='ReduceOnPlateauLR',
    monitor='accuracy/top1',
    rule='greater',
    factor=0.1,
    patience=5,
    min_value=1e-6,
    by_epoch=True)

# The plateau schedule reads the metric of every validation.
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# The lr is set for the bird project's batch of 8 on one GPU; `tools/train.py
# --auto-scale-lr` rescales it for another global batch.
auto_scale_lr = dict(base_batch_size=8, enable=False)
