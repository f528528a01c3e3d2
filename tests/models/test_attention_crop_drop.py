"""AttentionCropDrop: a ClsDataPreprocessor that also crops and drops."""
import pytest
import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mmcal_test_utils import tiny_model_cfg

from mmcal.models.data_preprocessors import AttentionCropDrop
from mmcal.testing.reference_ops import reference_crop, reference_drop

NORM = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)


def build(**kwargs):
    return MODELS.build(dict(type='AttentionCropDrop', **NORM, **kwargs))


def test_preprocesses_like_cls_data_preprocessor():
    torch.manual_seed(0)
    images = [torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8)
              for _ in range(3)]
    data = dict(
        inputs=images,
        data_samples=[DataSample().set_gt_label(i) for i in range(3)])
    ours = build()(dict(data), training=False)
    standard = ClsDataPreprocessor(**NORM)(dict(data), training=False)
    assert ours['inputs'].shape == (3, 3, 20, 24)
    assert torch.equal(ours['inputs'], standard['inputs'])
    # BGR -> RGB and normalisation by hand for one pixel.
    pixel = images[1][:, 4, 5].float()
    expected = (pixel.flip(0) - torch.tensor(NORM['mean'])) / torch.tensor(
        NORM['std'])
    torch.testing.assert_close(ours['inputs'][1, :, 4, 5], expected)
    assert ours['data_samples'] is data['data_samples']


@pytest.mark.parametrize('augments', [
    dict(type='Mixup', alpha=1.0),
    [dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)],
])
def test_batch_augments_are_refused_with_the_reason(augments):
    """Mixup/CutMix write gt_score; CAL's losses read gt_label only."""
    with pytest.raises(ValueError, match='CAL does not support batch '
                       r'augments.*gt_score.*gt_label'):
        build(num_classes=3, batch_augments=dict(augments=augments))
    # ImageClassifier passes its train_cfg (None here) as batch_augments.
    assert build(batch_augments=None).batch_augments is None


def test_classifier_train_cfg_augments_are_refused_at_build():
    """The mmpretrain habit: model.train_cfg=dict(augments=[...])."""
    cfg = tiny_model_cfg(
        train_cfg=dict(augments=[dict(type='Mixup', alpha=1.0)]))
    with pytest.raises(ValueError, match='does not support batch augments'):
        MODELS.build(cfg)


def test_crop_and_drop_match_reference_loop():
    generator = torch.Generator().manual_seed(1)
    preprocessor = build()
    inputs = torch.randn(4, 3, 24, 32, generator=generator)
    maps = torch.rand(4, 1, 6, 8, generator=generator)**4
    theta = torch.tensor([0.3, 0.5, 0.7, 0.9])
    _, crops = reference_crop(inputs, maps, theta, 0.1)
    torch.testing.assert_close(
        preprocessor.crop(inputs, maps, theta, 0.1), crops, atol=1e-5, rtol=0)
    assert torch.equal(
        preprocessor.drop(inputs, maps, 0.4),
        reference_drop(inputs, maps, [0.4] * 4))


class RecordingPreprocessor(AttentionCropDrop):
    """Records the arguments augment() passes to crop and drop."""

    def crop(self, inputs, attention_maps, theta, padding_ratio):
        self.crop_args = (attention_maps, theta, padding_ratio)
        return super().crop(inputs, attention_maps, theta, padding_ratio)

    def drop(self, inputs, attention_maps, theta):
        self.drop_args = (attention_maps, theta)
        return super().drop(inputs, attention_maps, theta)


def test_augment_draws_thresholds_in_the_ranges():
    torch.manual_seed(2)
    preprocessor = RecordingPreprocessor(
        crop_theta_range=(0.45, 0.55),
        drop_theta_range=(0.1, 0.3),
        crop_padding_ratio=0.07,
        **NORM)
    batch = 64
    inputs = torch.randn(batch, 3, 16, 16)
    crop_maps, drop_maps = torch.rand(batch, 1, 4, 4), torch.rand(
        batch, 1, 4, 4)
    out = preprocessor.augment(inputs, crop_maps, drop_maps)
    assert out.shape == (2 * batch, 3, 16, 16)
    maps, crop_theta, padding = preprocessor.crop_args
    assert maps is crop_maps and padding == 0.07
    assert crop_theta.shape == (batch, )
    assert 0.45 <= crop_theta.min() and crop_theta.max() <= 0.55
    maps, drop_theta = preprocessor.drop_args
    assert maps is drop_maps and drop_theta.shape == (batch, )
    assert 0.1 <= drop_theta.min() and drop_theta.max() <= 0.3
    # Drawn per sample, spread over the range.
    assert drop_theta.max() - drop_theta.min() > 0.15
    assert crop_theta.max() - crop_theta.min() > 0.07
    # Crops first, then drops, each equal to the reference loop with the
    # thresholds drawn.
    _, crops = reference_crop(inputs, crop_maps, crop_theta, 0.07)
    torch.testing.assert_close(out[:batch], crops, atol=1e-5, rtol=0)
    assert torch.equal(out[batch:],
                       reference_drop(inputs, drop_maps, drop_theta))


def test_augment_default_ranges_and_no_grad():
    preprocessor = RecordingPreprocessor(**NORM)
    assert preprocessor.crop_theta_range == (0.4, 0.6)
    assert preprocessor.drop_theta_range == (0.2, 0.5)
    assert preprocessor.crop_padding_ratio == 0.1
    inputs = torch.randn(32, 3, 8, 8, requires_grad=True)
    maps = torch.rand(32, 1, 2, 2, requires_grad=True)
    out = preprocessor.augment(inputs, maps, maps)
    assert not out.requires_grad
    assert 0.4 <= preprocessor.crop_args[1].min()
    assert preprocessor.crop_args[1].max() <= 0.6
    assert 0.2 <= preprocessor.drop_args[1].min()
    assert preprocessor.drop_args[1].max() <= 0.5
    # A fixed range gives a fixed theta.
    fixed = RecordingPreprocessor(drop_theta_range=(0.3, 0.3), **NORM)
    fixed.augment(inputs, maps, maps)
    torch.testing.assert_close(fixed.drop_args[1], torch.full((32, ), 0.3))


@pytest.mark.parametrize('key,value', [('crop_theta_range', (0.6, 0.4)),
                                       ('drop_theta_range', (0.2, 1.5)),
                                       ('crop_theta_range', (-0.1, 0.5)),
                                       ('drop_theta_range', (0.1, 0.2, 0.3))
                                       ])
def test_bad_theta_range_raises_naming_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        build(**{key: value})
