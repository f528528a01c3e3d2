# CAL's attention-guided views, stated once for every CAL config; a config
# takes them with data_preprocessor = {{_base_.cal_data_preprocessor}} and
# model = dict(test_cfg={{_base_.cal_test_views}}).

# Training, WS-DAN's augmentation with the reference's settings: per sample,
# crop to the pixels of a drawn attention map above theta ~ U(0.4, 0.6) of
# its maximum, the box widened by 10 % of the image side; drop (zero) the
# pixels of another drawn map above theta ~ U(0.2, 0.5). The model's data
# preprocessor is the top-level one, since tools/test.py --tta rebuilds the
# model from it.
cal_data_preprocessor = dict(
    type='AttentionCropDrop',
    crop_theta_range=(0.4, 0.6),
    drop_theta_range=(0.2, 0.5),
    crop_padding_ratio=0.1)

# Testing, the paper's multi-crop + flip: the raw image and crops of the
# mean attention map at theta 0.3 / 0.2 / 0.1 (padding 0.1 / 0.1 / 0.05),
# and the same for the flipped image, logits averaged. Validation keeps the
# reference's raw image + one crop at (0.1, 0.05), CALClassifier's default.
cal_test_views = dict(crops=[(0.3, 0.1), (0.2, 0.1), (0.1, 0.05)], flip=True)
