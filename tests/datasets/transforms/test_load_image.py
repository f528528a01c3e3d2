"""LoadImageSafely: every colour mode to 3-channel BGR, broken files named."""
import logging
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from mmcal.datasets.transforms import LoadImageSafely


def load(path, **kwargs):
    return LoadImageSafely(**kwargs)(dict(img_path=str(path)))['img']


def test_missing_file_is_named(tmp_path):
    path = tmp_path / 'no_such_bird.jpg'
    with pytest.raises(FileNotFoundError, match='Image file not found') as e:
        load(path)
    assert str(path) in str(e.value)


def test_zero_byte_file_is_named(tmp_path):
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    with pytest.raises(OSError, match=r'empty \(0 bytes\)') as e:
        load(path)
    assert str(path) in str(e.value)


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / 'corrupt.jpg'
    path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(OSError, match='Cannot read image') as e:
        load(path)
    assert str(path) in str(e.value)
    assert 'UnidentifiedImageError' in str(e.value)


@pytest.mark.parametrize('suffix', ['jpg', 'png'])
def test_truncated_file_is_named(tmp_path, suffix):
    whole = tmp_path / f'whole.{suffix}'
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3),
                                 dtype=np.uint8)).save(whole)
    data = whole.read_bytes()
    path = tmp_path / f'cut.{suffix}'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(OSError, match='Cannot read image') as e:
        load(path)
    assert str(path) in str(e.value)
    assert 'truncated' in str(e.value).lower()


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / 'grey.png'
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, mode='L').save(path)
    img = load(path)
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(img[..., channel], grey)


def test_rgba_drops_alpha_in_bgr_order(tmp_path):
    path = tmp_path / 'rgba.png'
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[...] = (200, 100, 50, 0)  # fully transparent: colour kept
    rgba[0, 0] = (10, 20, 30, 255)
    Image.fromarray(rgba, mode='RGBA').save(path)
    img = load(path)
    assert img.shape == (2, 3, 3)
    assert img[0, 0].tolist() == [30, 20, 10]
    assert img[1, 2].tolist() == [50, 100, 200]


def test_palette_image_uses_its_colours(tmp_path):
    path = tmp_path / 'palette.png'
    palette_image = Image.new('P', (4, 2))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putdata([0, 1] * 4)
    palette_image.save(path)
    img = load(path)
    assert img.shape == (2, 4, 3)
    assert img[0, 0].tolist() == [0, 0, 255]  # red, as BGR
    assert img[0, 1].tolist() == [255, 0, 0]  # blue, as BGR


def test_cmyk_jpeg_is_converted(tmp_path):
    path = tmp_path / 'cmyk.jpg'
    # Cyan ink only: no red, full green and blue.
    Image.new('CMYK', (16, 16), (255, 0, 0, 0)).save(path, quality=100)
    assert Image.open(path).mode == 'CMYK'
    img = load(path)
    assert img.shape == (16, 16, 3)
    np.testing.assert_allclose(img[8, 8], [255, 255, 0], atol=3)


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    path = tmp_path / 'grey16.png'
    values = np.array([[0, 257 * 100, 65535]], np.uint16)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith('I')
    img = load(path)
    assert img.dtype == np.uint8
    assert img[0, :, 0].tolist() == [0, 100, 255]
    np.testing.assert_array_equal(img[..., 0], img[..., 2])


def test_16_bit_colour_is_scaled(tmp_path):
    path = str(tmp_path / 'bgr16.png')
    bgr16 = np.zeros((2, 2, 3), np.uint16)
    bgr16[...] = (257 * 10, 257 * 100, 65535)
    cv2.imwrite(path, bgr16)
    assert load(path)[0, 0].tolist() == [10, 100, 255]


def test_image_smaller_than_crop_goes_through_resize_then_crop(tmp_path):
    # The recipes' order: Resize to a fixed size, then crop.
    path = tmp_path / 'tiny.png'
    Image.fromarray(np.full((6, 5, 3), 90, np.uint8)).save(path)
    pipeline = [
        TRANSFORMS.build(t) for t in [
            dict(type='LoadImageSafely'),
            dict(type='Resize', scale=(40, 40)),
            dict(type='RandomCrop', crop_size=32),
            dict(type='PackInputs'),
        ]
    ]
    results = dict(img_path=str(path), gt_label=0)
    for transform in pipeline:
        results = transform(results)
    assert tuple(results['inputs'].shape) == (3, 32, 32)
    assert results['data_samples'].ori_shape == (6, 5)


def test_image_smaller_than_crop_without_resize_needs_padding(tmp_path):
    path = tmp_path / 'tiny.png'
    Image.fromarray(np.full((6, 5, 3), 90, np.uint8)).save(path)
    results = LoadImageSafely()(dict(img_path=str(path)))
    crop = TRANSFORMS.build(
        dict(type='RandomCrop', crop_size=32, pad_if_needed=True))
    assert crop(results)['img'].shape == (32, 32, 3)


def test_very_large_image_loads_and_resizes(tmp_path):
    path = tmp_path / 'large.jpg'
    Image.new('RGB', (4000, 3000), (10, 200, 30)).save(path)
    results = LoadImageSafely()(dict(img_path=str(path)))
    assert results['img'].shape == (3000, 4000, 3)
    assert results['ori_shape'] == (3000, 4000)
    resized = TRANSFORMS.build(dict(type='Resize', scale=(32, 32)))(results)
    assert resized['img'].shape == (32, 32, 3)
    np.testing.assert_allclose(resized['img'][16, 16], [30, 200, 10], atol=3)


def test_image_over_pillow_pixel_limit_is_named(tmp_path, monkeypatch):
    # A decompression bomb: the header claims more pixels than allowed.
    path = tmp_path / 'bomb.png'
    Image.new('RGB', (100, 100)).save(path)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    with pytest.raises(OSError, match='DecompressionBombError') as e:
        load(path)
    assert str(path) in str(e.value)


def test_skip_broken_warns_counts_and_returns_none(tmp_path):
    good = tmp_path / 'good.png'
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(good)
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    transform = LoadImageSafely(skip_broken=True)
    messages = []
    logger = MMLogger.get_current_instance()
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        assert transform(dict(img_path=str(empty))) is None
        assert transform(dict(img_path=str(tmp_path / 'gone.png'))) is None
        assert transform(dict(img_path=str(good)))['img'].shape == (4, 4, 3)
    finally:
        logger.removeHandler(handler)
    assert transform.num_skipped == 2
    assert str(empty) in messages[0] and '1 skipped so far' in messages[0]
    assert osp.join(str(tmp_path), 'gone.png') in messages[1]
    assert '2 skipped so far' in messages[1]


def test_already_loaded_image_is_kept():
    """mmpretrain's inferencer passes the image, not its path."""
    img = np.random.default_rng(0).integers(0, 255, (5, 7, 3), np.uint8)
    results = LoadImageSafely()(
        dict(img=img, img_shape=(5, 7), ori_shape=(5, 7)))
    np.testing.assert_array_equal(results['img'], img)
    assert results['img_shape'] == (5, 7)
    assert results['ori_shape'] == (5, 7)


@pytest.mark.parametrize('shape', [(5, 7), (5, 7, 1), (5, 7, 4)])
def test_already_loaded_image_becomes_three_channels(shape):
    img = np.random.default_rng(0).integers(0, 255, shape, np.uint8)
    out = LoadImageSafely()(dict(img=img))['img']
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    grey_or_bgr = img.reshape(5, 7, -1)
    expected = (np.repeat(grey_or_bgr, 3, axis=2)
                if grey_or_bgr.shape[2] == 1 else grey_or_bgr[..., :3])
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize('img, error, match', [
    (np.zeros((4, 4, 3), np.float32), TypeError, 'dtype float32'),
    (np.zeros((4, 4, 2), np.uint8), ValueError, r'shape \(4, 4, 2\)'),
    (np.zeros((0, 4, 3), np.uint8), ValueError, r'shape \(0, 4, 3\)'),
    ([[0, 1], [2, 3]], TypeError, 'numpy array, got list'),
])
def test_bad_loaded_image_is_refused_with_its_fault(img, error, match):
    with pytest.raises(error, match=match):
        LoadImageSafely()(dict(img=img))


def test_neither_path_nor_image_names_the_keys():
    with pytest.raises(KeyError, match='img_path.*got the keys img_shape'):
        LoadImageSafely()(dict(img_shape=(3, 3)))


def test_inferencer_pipeline_keeps_loaded_image_and_safeties(tmp_path):
    """A shipped-style test pipeline through mmpretrain's inferencer
    pipeline handling: an array goes through, a bad file is still named."""
    cfg = [dict(type='LoadImageSafely'), dict(type='PackInputs')]
    from mmcv.transforms import Compose
    from mmpretrain.datasets import remove_transform
    pipeline = Compose(
        [TRANSFORMS.build(t) for t in remove_transform(cfg,
                                                      'LoadImageFromFile')])
    img = np.full((6, 6, 3), 9, np.uint8)
    packed = pipeline(dict(img=img, img_shape=(6, 6), ori_shape=(6, 6)))
    assert tuple(packed['inputs'].shape) == (3, 6, 6)
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    with pytest.raises(OSError, match='empty'):
        pipeline(dict(img_path=str(path)))
