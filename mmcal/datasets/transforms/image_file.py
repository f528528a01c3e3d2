"""Opening image files so that nothing is read or decoded before it is
known to be a bounded image: regular files only, formats whose size Pillow
reads from the header, and a file size bounded by the pixels."""
import os
import os.path as osp
import stat
from typing import BinaryIO, Optional, Tuple

from PIL import Image

# Pillow reads the size of these from the header and decodes nothing while
# opening (WebP once :func:`check_webp_size` has passed). Others do: ICO and
# ICNS decode their embedded PNG inside Image.open, before any size check,
# and EPS runs Ghostscript on load.
READ_FORMATS = ('BMP', 'GIF', 'JPEG', 'PNG', 'PPM', 'TIFF', 'WEBP')
# An uncompressed pixel takes at most 8 bytes (4 channels of 16 bits); the
# allowance is for metadata (EXIF, ICC profiles, thumbnails) and frames.
BYTES_PER_PIXEL = 8
ALLOWANCE_BYTES = 16 * 2**20

FILE_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISFIFO, 'a FIFO'),
              (stat.S_ISCHR, 'a character device'),
              (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))


def _not_regular(path: str, mode: int) -> OSError:
    kind = next((kind for test, kind in FILE_KINDS if test(mode)),
                'not a regular file')
    real = osp.realpath(path)
    link = f' (a link to {real})' if real != osp.abspath(path) else ''
    return OSError(f'Cannot read image {path}{link}: it is {kind}, not a '
                   'regular file')


def open_regular_file(path: str) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file (links
    followed), else ``OSError`` naming what it is.

    A FIFO would block the reader and ``/dev/zero`` would be read until
    memory runs out. The file is checked before it is opened (opening a
    device can act on it) and again on the open descriptor, so that a
    file swapped in between is caught; ``O_NONBLOCK`` keeps a FIFO swapped
    in from blocking the open.

    Raises:
        FileNotFoundError: naming ``path`` when nothing is there.
        OSError: naming ``path`` and its kind when it is not a regular file.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise FileNotFoundError(f'Image file not found: {path}') from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return os.fdopen(fd, 'rb')


def check_pixels(path: str, size: Tuple[int, int], max_pixels: int) -> None:
    """``OSError`` naming ``path``, its ``(width, height)`` and the limit
    when the image has more than ``max_pixels`` pixels."""
    width, height = size
    if width * height > max_pixels:
        raise OSError(f'Refused image {path}: {width}x{height} = '
                      f'{width * height} pixels is above the limit of '
                      f'{max_pixels} (LoadImageSafely max_pixels)')


def webp_size(head: bytes) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of a still (``VP8 ``, ``VP8L``) or extended
    (``VP8X``) WebP file from its first 30 bytes, as libwebp reads them;
    ``None`` for a header of another kind."""
    chunk = head[12:16]
    if chunk == b'VP8 ' and head[23:26] == b'\x9d\x01\x2a':
        return (int.from_bytes(head[26:28], 'little') & 0x3FFF,
                int.from_bytes(head[28:30], 'little') & 0x3FFF)
    if chunk == b'VP8X' and len(head) >= 30:
        return (int.from_bytes(head[24:27], 'little') + 1,
                int.from_bytes(head[27:30], 'little') + 1)
    if chunk == b'VP8L' and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], 'little')
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def check_webp_size(path: str, file: BinaryIO, max_pixels: int) -> None:
    """For a WebP file, :func:`check_pixels` on the size in its header.

    Pillow's WebP reader makes libwebp's decoder while opening the file,
    and the decoder allocates its canvas (4 bytes a pixel) at once: the
    size is checked first, and a WebP header whose size cannot be read is
    refused. Other files are left to ``Image.open``.
    """
    file.seek(0)
    head = file.read(30)
    file.seek(0)
    if head[:4] != b'RIFF' or head[8:12] != b'WEBP':
        return
    size = webp_size(head)
    if size is None:
        raise OSError(f'Cannot read image {path}: a WebP file whose size '
                      'header (VP8, VP8L or VP8X) cannot be read')
    check_pixels(path, size, max_pixels)


def max_file_bytes(pixels: int) -> int:
    """The largest file read for an image of ``pixels`` pixels."""
    return pixels * BYTES_PER_PIXEL + ALLOWANCE_BYTES


def check_file_size(path: str, size: int, pixels: int, what: str) -> None:
    """``OSError`` naming ``path`` when ``size`` bytes are more than
    ``pixels`` pixels (described by ``what``) can need."""
    if size > max_file_bytes(pixels):
        raise OSError(
            f'Refused image {path}: the file is {size} bytes, more than '
            f'{what} needs ({max_file_bytes(pixels)} bytes at most: '
            f'{BYTES_PER_PIXEL} a pixel and {ALLOWANCE_BYTES} for metadata)')


def format_name(head: bytes) -> str:
    """The format Pillow recognises in the first bytes of a file, from the
    formats' own signature tests (nothing is decoded), or ``'unknown'``."""
    Image.init()
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        try:
            if accept is not None and accept(head):
                return name
        except Exception:  # a signature test that cannot read ``head``
            continue
    return 'unknown'


def refuse_other_format(path: str, file: BinaryIO) -> None:
    """``OSError`` naming ``path`` and its format when the file's signature
    is of a format Pillow knows but :data:`READ_FORMATS` leaves out; call
    it when ``Image.open(file, formats=READ_FORMATS)`` failed, so that the
    format is named rather than reported as unknown."""
    file.seek(0)
    found = format_name(file.read(16))
    # MPO is JPEG's multi-picture form, which Pillow opens as JPEG.
    if found not in (*READ_FORMATS, 'MPO', 'unknown'):
        raise OSError(f'Refused image {path}: it is in the {found} format '
                      f'(by its first bytes); only {", ".join(READ_FORMATS)} '
                      'files are read (their size is checked before any '
                      'pixel is decoded)')
