import io
import logging
from typing import BinaryIO, Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageOps

from .image_file import (READ_FORMATS, check_file_size, check_pixels,
                         check_webp_size, open_regular_file,
                         refuse_other_format)
from .jpeg_cut_short import jpeg_cut_short

# Modes whose pixels are integers wider than 8 bits (PIL opens 16-bit PNG and
# TIFF greyscale as these); they are scaled, not clipped, to 8 bits.
WIDE_INTEGER_MODES = ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N')
DEFAULT_MAX_PIXELS = 50_000_000


def _cannot_read(path: str, size: int, error: Exception) -> OSError:
    # Pillow raises many types for unknown formats, truncated data, corrupt
    # headers and decompression bombs; the path is what the user needs.
    return OSError(f'Cannot read image {path} ({size} bytes): '
                   f'{type(error).__name__}: {error}')


def pil_to_bgr(image: Image.Image) -> np.ndarray:
    """Any PIL image -> (H, W, 3) uint8 array in BGR order.

    Greyscale, palette, CMYK, YCbCr, alpha and 16-bit images are converted
    the way a viewer shows them: 16-bit values are divided by 257 (65535 ->
    255), alpha is dropped (as by OpenCV's colour loading, mmpretrain's
    default), palettes and CMYK go through PIL's conversion; float ('F')
    images are read as 0-255.
    """
    if image.mode in WIDE_INTEGER_MODES or image.mode == 'F':
        wide = np.asarray(image, dtype=np.float64)
        if image.mode != 'F':
            wide = wide / 257
        grey = np.clip(np.rint(wide), 0, 255).astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    else:
        rgb = np.asarray(image.convert('RGB'))
    return np.ascontiguousarray(rgb[..., ::-1])


def check_loaded(img) -> np.ndarray:
    """An already-loaded image -> (H, W, 3) uint8 BGR.

    Args:
        img: (H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA uint8 array.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError('LoadImageSafely: results["img"] must be a numpy '
                        f'array, got {type(img).__name__}')
    if img.dtype != np.uint8:
        raise TypeError('LoadImageSafely: results["img"] must be uint8 '
                        f'(0-255 BGR), got dtype {img.dtype}')
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4) or 0 in img.shape:
        raise ValueError('LoadImageSafely: results["img"] must be (H, W), '
                         '(H, W, 1), (H, W, 3) or (H, W, 4), got shape '
                         f'{tuple(img.shape)}')
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


@TRANSFORMS.register_module()
class LoadImageSafely(BaseTransform):
    """Load an image as (H, W, 3) uint8 BGR, naming the file when it fails.

    A drop-in replacement for ``LoadImageFromFile`` (same keys written:
    ``img``, ``img_shape``, ``ori_shape``). It decodes with Pillow, which
    says why a file cannot be decoded (``LoadImageFromFile`` only asserts
    that OpenCV returned an image), and converts every colour mode to 3
    channels (see :func:`pil_to_bgr`). EXIF orientation is applied, as
    OpenCV does.

    A missing file raises ``FileNotFoundError``, an empty, truncated or
    corrupt one raises ``OSError``; both name the path. An image of more
    than ``max_pixels`` pixels raises ``OSError`` naming the path, its size
    and the limit before it is decoded: the size is read from the header, so
    a small file claiming a huge image (a decompression bomb) costs no
    memory. Only the formats whose size Pillow reads without decoding are
    opened (BMP, GIF, JPEG, PNG, PPM/PGM, TIFF, WebP); another one, such as
    an ICO or ICNS file whose embedded PNG Pillow decodes while opening it,
    is refused by name. A local path must be a regular file (links
    followed): a FIFO, a device such as ``/dev/zero`` or a folder is
    refused by kind before it is read. A file larger than 8 bytes a pixel
    plus 16 MiB (of ``max_pixels``, then of the size in its header) is
    refused before it is read further. A JPEG cut short and closed with an
    end marker, which Pillow decodes grey where data is missing, is refused
    (see :func:`~.jpeg_cut_short.jpeg_cut_short`).

    An image that is already loaded (``results['img']``, as mmpretrain's
    ``ImageClassificationInferencer`` and ``inference_model`` pass it: they
    remove only ``LoadImageFromFile`` from the test pipeline) is kept if it
    is a uint8 array: (H, W) and (H, W, 1) become 3 equal channels, (H, W,
    4) loses its alpha channel; anything else raises ``TypeError`` or
    ``ValueError`` naming the dtype or shape (see :func:`check_loaded`).

    Args:
        skip_broken: instead of raising, warn, count the image as skipped and
            return ``None``; mmengine's ``BaseDataset`` then draws another
            image. Only for training pipelines: validation and test need a
            prediction for every image, and mmengine refuses ``None`` there.
        backend_args: arguments of the mmengine file backend (e.g. for
            object storage), as in ``LoadImageFromFile``.
        max_pixels: the largest width x height read. The default, 50
            megapixels, is above a 48 MP camera photo and about half of
            Pillow's own decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``,
            which still applies); decoding it costs about 0.5 GB.
    """

    def __init__(self,
                 skip_broken: bool = False,
                 backend_args: Optional[dict] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        if max_pixels < 1:
            raise ValueError(f'max_pixels must be positive, got {max_pixels}')
        self.skip_broken = skip_broken
        self.backend_args = backend_args
        self.max_pixels = max_pixels
        # Per process: each dataloader worker counts its own skips.
        self.num_skipped = 0

    def read(self, path: str) -> np.ndarray:
        """Decode the image at ``path`` to (H, W, 3) uint8 BGR."""
        backend = fileio.get_file_backend(
            path, backend_args=self.backend_args)
        if isinstance(backend, LocalBackend):
            file = open_regular_file(path)
        else:  # object storage and URLs: the bytes as the backend gives
            try:
                file = io.BytesIO(backend.get(path))
            except FileNotFoundError:
                raise FileNotFoundError(
                    f'Image file not found: {path}') from None
        with file:
            return self.decode(path, file)

    def decode(self, path: str, file: BinaryIO) -> np.ndarray:
        """Decode the image file ``file`` (from ``path``) to (H, W, 3) uint8
        BGR, reading its header before anything else."""
        size = file.seek(0, io.SEEK_END)
        file.seek(0)
        if size == 0:
            raise OSError(f'Cannot read image {path}: the file is empty '
                          '(0 bytes)')
        check_file_size(path, size, self.max_pixels,
                        f'an image of max_pixels={self.max_pixels} pixels')
        check_webp_size(path, file, self.max_pixels)
        try:
            # Opening reads the header only; load() decodes the pixels.
            image = Image.open(file, formats=READ_FORMATS)
        except Exception as error:
            refuse_other_format(path, file)
            raise _cannot_read(path, size, error) from None
        with image:
            check_pixels(path, image.size, self.max_pixels)
            width, height = image.size
            check_file_size(path, size, width * height,
                            f'a {width}x{height} image')
            try:
                image.load()
                cut_short = jpeg_cut_short(image, file)
                if not cut_short:
                    return pil_to_bgr(ImageOps.exif_transpose(image))
            except Exception as error:
                raise _cannot_read(path, size, error) from None
        raise OSError(
            f'Cannot read image {path} ({size} bytes): its JPEG data ends '
            'early (cut short, then closed with an end marker); the '
            'missing part would be decoded grey or blurred')

    def transform(self, results: dict) -> Optional[dict]:
        if results.get('img') is not None:
            img = check_loaded(results['img'])
            results['img'] = img
            results['img_shape'] = img.shape[:2]
            results.setdefault('ori_shape', img.shape[:2])
            return results
        if 'img_path' not in results:
            raise KeyError('LoadImageSafely needs the key img_path (a file '
                           'to read) or img (an image already loaded); got '
                           f'the keys {", ".join(sorted(results))}')
        path = results['img_path']
        try:
            img = self.read(path)
        except OSError as error:
            if not self.skip_broken:
                raise
            self.num_skipped += 1
            print_log(
                f'Skipped an image ({self.num_skipped} skipped so far by '
                f'this process): {error}',
                logger='current',
                level=logging.WARNING)
            return None
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(skip_broken={self.skip_broken}, '
                f'backend_args={self.backend_args}, '
                f'max_pixels={self.max_pixels})')
