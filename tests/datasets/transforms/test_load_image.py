"""LoadImageSafely: every colour mode to 3-channel BGR, broken files named."""
import json
import logging
import os.path as osp
import subprocess
import sys
import tracemalloc

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from mmcal.datasets.transforms import LoadImageSafely
from mmcal.datasets.transforms.load_image import DEFAULT_MAX_PIXELS


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


@pytest.fixture(scope='module')
def bomb(tmp_path_factory):
    """A 9500 x 9500 black PNG: about 90 KB on disk, 90 megapixels (270 MB
    as BGR); just above Pillow's own limit, which only warns there."""
    path = tmp_path_factory.mktemp('bomb') / 'bomb.png'
    Image.new('L', (9500, 9500)).save(path)
    assert path.stat().st_size < 200_000
    assert 9500 * 9500 < 2 * Image.MAX_IMAGE_PIXELS
    return str(path)


def test_image_over_max_pixels_is_refused_naming_path_size_and_limit(bomb):
    with pytest.raises(OSError) as e:
        load(bomb)
    assert str(e.value) == (
        f'Refused image {bomb}: 9500x9500 = 90250000 pixels is above the '
        'limit of 50000000 (LoadImageSafely max_pixels)')
    assert LoadImageSafely(skip_broken=True)(dict(img_path=bomb)) is None


def test_max_pixels_is_inclusive_and_configurable(tmp_path):
    path = tmp_path / 'small.png'
    Image.new('RGB', (100, 50)).save(path)
    assert load(path, max_pixels=5000).shape == (50, 100, 3)
    with pytest.raises(OSError, match=r'100x50 = 5000 pixels is above the '
                       'limit of 4999'):
        load(path, max_pixels=4999)
    with pytest.raises(ValueError, match='max_pixels must be positive'):
        LoadImageSafely(max_pixels=0)
    assert 'max_pixels=4999' in repr(LoadImageSafely(max_pixels=4999))


MEASURE_PEAK = """
import json, re, sys
from mmcal.datasets.transforms import LoadImageSafely

def resident_kb(field):
    with open('/proc/self/status') as status:
        return int(re.search(field + r':\\s+(\\d+) kB', status.read())[1])

def grown_mb(path):
    # Linux: writing 5 to clear_refs resets the peak (VmHWM) to the
    # current resident size.
    with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')
    before = resident_kb('VmRSS')
    try:
        LoadImageSafely()(dict(img_path=path))
        outcome = 'decoded'
    except OSError as error:
        outcome = str(error)
    return dict(mb=(resident_kb('VmHWM') - before) / 1024, outcome=outcome)

print(json.dumps([grown_mb(path) for path in sys.argv[1:]]))
"""


def test_refused_image_is_never_decoded(bomb, tmp_path):
    """Peak memory of a fresh process: refusing the 90-megapixel file costs
    nothing, while decoding a 16-megapixel one (the control: the
    measurement sees a decode) costs over 100 MB (the bomb's decode costs
    about 0.9 GB)."""
    control = tmp_path / 'control.png'
    Image.new('L', (4000, 4000)).save(control)
    result = subprocess.run(
        [sys.executable, '-c', MEASURE_PEAK, bomb,
         str(control)],
        capture_output=True,
        text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr
    refused, decoded = json.loads(result.stdout.splitlines()[-1])
    assert refused['outcome'].startswith('Refused image')
    assert refused['mb'] < 20, refused
    assert decoded['outcome'] == 'decoded'
    assert decoded['mb'] > 100, decoded


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
    pipeline = Compose([
        TRANSFORMS.build(t)
        for t in remove_transform(cfg, 'LoadImageFromFile')
    ])
    img = np.full((6, 6, 3), 9, np.uint8)
    packed = pipeline(dict(img=img, img_shape=(6, 6), ori_shape=(6, 6)))
    assert tuple(packed['inputs'].shape) == (3, 6, 6)
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    with pytest.raises(OSError, match='empty'):
        pipeline(dict(img_path=str(path)))


def ico_holding(png: bytes) -> bytes:
    """An ICO file of one entry whose image is ``png``; its directory says
    256x256 (a size byte of 0), whatever the PNG's size."""
    header = (0, 1, 1)  # reserved, type 1 (icon), one entry
    entry = (0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return (np.array(header, '<u2').tobytes() +
            np.array(entry[:4], 'u1').tobytes() +
            np.array(entry[4:6], '<u2').tobytes() +
            np.array(entry[6:], '<u4').tobytes() + png)


def test_ico_holding_a_huge_png_is_refused_before_decoding(bomb, tmp_path):
    """Pillow decodes an ICO's embedded PNG inside Image.open, before the
    size could be checked: the 90-megapixel PNG of a file named .png."""
    disguised = tmp_path / 'bird.png'
    disguised.write_bytes(ico_holding(open(bomb, 'rb').read()))
    result = subprocess.run(
        [sys.executable, '-c', MEASURE_PEAK, str(disguised)],
        capture_output=True,
        text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr
    [refused] = json.loads(result.stdout.splitlines()[-1])
    assert refused['outcome'] == (
        f'Refused image {disguised}: it is in the ICO format (by its first '
        'bytes); only BMP, GIF, JPEG, PNG, PPM, TIFF, WEBP files are read '
        '(their size is checked before any pixel is decoded)')
    assert refused['mb'] < 20, refused


@pytest.mark.parametrize('suffix, format', [('ico', 'ICO'), ('icns', 'ICNS'),
                                            ('eps', 'EPS')])
def test_formats_decoded_while_opening_are_refused_by_name(
        tmp_path, suffix, format):
    path = tmp_path / f'bird.{suffix}'
    Image.new('RGB', (64, 64), (1, 2, 3)).save(path)
    with pytest.raises(OSError, match=f'it is in the {format} format') as e:
        load(path)
    assert str(e.value).startswith(f'Refused image {path}: ')
    assert LoadImageSafely(skip_broken=True)(dict(img_path=str(path))) is None


# Every format read, in the forms the tests, the demo and the prediction
# tool's file types (.pgm, .ppm, .tif, .webp ...) use.
HONEST = [('bmp', {}), ('gif', {}), ('png', {}), ('ppm', {}), ('tif', {}),
          ('tif', dict(compression='tiff_lzw')), ('webp', dict(lossless=True)),
          ('webp', dict(lossless=True, exact=True, mode='RGBA'))]


@pytest.mark.parametrize('suffix, options', HONEST)
def test_every_format_read_keeps_its_pixels(tmp_path, suffix, options):
    rgb = np.random.default_rng(0).integers(0, 255, (10, 20, 3), np.uint8)
    image = Image.fromarray(rgb)
    if suffix == 'gif':  # 256 colours at most: keep the palette's
        image = image.quantize(64)
        rgb = np.asarray(image.convert('RGB'))
    options = dict(options)
    mode = options.pop('mode', None)
    path = tmp_path / f'bird.{suffix}'
    (image.convert(mode) if mode else image).save(path, **options)
    np.testing.assert_array_equal(load(path), rgb[..., ::-1])


@pytest.mark.parametrize('suffix, options', [
    ('pgm', {}), ('jpg', {}), ('jpg', dict(progressive=True)),
    ('webp', dict(quality=90))])
def test_lossy_and_grey_formats_load(tmp_path, suffix, options):
    grey = np.tile(np.arange(0, 200, 10, dtype=np.uint8), (10, 1))
    path = tmp_path / f'bird.{suffix}'
    Image.fromarray(grey).convert('L' if suffix == 'pgm' else 'RGB').save(
        path, **options)
    np.testing.assert_allclose(load(path)[..., 1], grey, atol=6)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    path = tmp_path / 'rotated.jpg'
    image = Image.new('RGB', (40, 24), (200, 30, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    image.save(path, exif=exif)
    assert load(path).shape == (40, 24, 3)


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decoding (a tile decoder, or libwebp's decoder, which
    allocates its canvas when made) fails the test."""
    from PIL import WebPImagePlugin

    def decoding(*args, **kwargs):
        raise AssertionError('a decoder was made before the size check')

    monkeypatch.setattr(Image, '_getdecoder', decoding)
    monkeypatch.setattr(WebPImagePlugin._webp, 'WebPAnimDecoder', decoding)


@pytest.mark.parametrize('suffix, options', HONEST + [
    ('jpg', {}), ('webp', dict(quality=50)), ('webp', dict(mode='RGBA'))])
def test_every_format_read_is_size_checked_before_any_decoder(
        tmp_path, suffix, options, request):
    path = tmp_path / f'bird.{suffix}'
    image = Image.new('RGB', (200, 100), (10, 20, 30))
    options = dict(options)
    mode = options.pop('mode', None)
    (image.convert(mode) if mode else image).save(path, **options)
    request.getfixturevalue('no_decoding')
    with pytest.raises(OSError, match=r'200x100 = 20000 pixels is above the '
                       'limit of 19999'):
        load(path, max_pixels=19999)


def textured(shape=(96, 128)):
    """A smooth random RGB picture, coded like a photo by JPEG."""
    small = np.random.default_rng(0).integers(0, 255, (12, 16, 3), np.uint8)
    return Image.fromarray(small).resize(shape[::-1], Image.BILINEAR)


@pytest.mark.parametrize('progressive', [False, True])
@pytest.mark.parametrize('kept', [0.3, 0.6, 0.9])
def test_jpeg_cut_short_and_closed_with_end_marker_is_refused(
        tmp_path, progressive, kept):
    whole = tmp_path / 'whole.jpg'
    textured().save(whole, quality=90, progressive=progressive)
    data = whole.read_bytes()
    path = tmp_path / 'cut.jpg'
    path.write_bytes(data[:int(len(data) * kept)] + b'\xff\xd9')
    # The layer below: Pillow decodes it without an error.
    Image.open(path).load()
    with pytest.raises(OSError) as e:
        load(path)
    assert str(e.value) == (
        f'Cannot read image {path} ({path.stat().st_size} bytes): its JPEG '
        'data ends early (cut short, then closed with an end marker); the '
        'missing part would be decoded grey or blurred')
    assert LoadImageSafely(skip_broken=True)(dict(img_path=str(path))) is None


@pytest.mark.parametrize('progressive', [False, True])
def test_honest_jpeg_with_a_mid_grey_corner_loads(tmp_path, progressive):
    """Exactly 128 in every channel, as libjpeg fills missing blocks: the
    second decode finds nothing missing."""
    picture = np.asarray(textured()).copy()
    picture[48:] = 128
    path = tmp_path / 'grey_bottom.jpg'
    Image.fromarray(picture).save(path, quality=95, progressive=progressive)
    img = load(path)
    assert (img[56:] == 128).all()
    assert np.abs(img[:40, :, ::-1] - picture[:40].astype(int)).mean() < 4


@pytest.mark.parametrize('max_pixels, what, pixels', [
    (1000, 'an image of max_pixels=1000 pixels', 1000),
    (DEFAULT_MAX_PIXELS, 'a 10x10 image', 100)])
def test_file_far_larger_than_its_pixels_is_refused_unread(
        tmp_path, max_pixels, what, pixels):
    """A 10x10 PNG padded to 40 MiB (sparse: no disk used); PNG readers
    ignore what follows the end chunk, and reading it whole would cost 40
    MiB before the header is even looked at."""
    path = tmp_path / 'padded.png'
    Image.new('RGB', (10, 10)).save(path)
    with open(path, 'r+b') as file:
        file.truncate(40 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(OSError) as e:
            load(path, max_pixels=max_pixels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(e.value) == (
        f'Refused image {path}: the file is {40 * 2**20} bytes, more than '
        f'{what} needs ({8 * pixels + 2**24} bytes at most: 8 a pixel and '
        f'{2**24} for metadata)')
    assert peak < 2**20
