# ResNet-18 at half width (256 channels out) with a stride-16 last stage:
# 6 x 6 feature maps at 96 px, fast enough for a CPU. The synthetic-bird
# models (plain, WS-DAN, CAL) share it, so the demo's plain stage is a
# backbone checkpoint for CAL.
model = dict(
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=32,
        base_channels=32,
        strides=(1, 2, 2, 1),
        out_indices=(3, )))
