"""Finding a JPEG file cut short and closed with an end-of-image marker,
which Pillow decodes without an error."""
import io
from typing import BinaryIO

from PIL import Image

END_OF_IMAGE = b'\xff\xd9'
# Put before the end marker for a second decode: entropy data for the
# blocks past a cut, if there is one. No 0xFF (a marker would end the scan
# again), and varied bits: in progressive scans an all-zero run often
# decodes as "no more coefficients", the same as no data.
FILLER = bytes(range(1, 255))


def jpeg_cut_short(image: Image.Image, file: BinaryIO) -> bool:
    """Whether the decoded JPEG ``image`` read from ``file`` lacks part of
    its entropy-coded data.

    When a scan ends early at a marker, libjpeg only warns (Pillow drops
    its warnings) and decodes the missing blocks from zeros: mid-grey, 128
    in every channel, from the cut to the bottom-right corner. A baseline
    JPEG whose corner pixel is 128 in every channel, and every progressive
    one (whose missing scans blur rather than grey it), is decoded again
    with :data:`FILLER` before its last end marker: a complete scan ends
    before the filler, so the pixels are the same, while a cut one decodes
    the filler in place of zeros.

    Args:
        image: the decoded image (``load()`` called), before any transpose.
        file: its file, read again (whole) only for the second decode.
    """
    if image.format not in ('JPEG', 'MPO'):
        return False
    progressive = image.info.get('progressive') or image.info.get(
        'progression')
    corner = image.getpixel((image.width - 1, image.height - 1))
    corner = corner if isinstance(corner, tuple) else (corner, )
    if not progressive and any(value != 128 for value in corner):
        return False
    file.seek(0)
    data = file.read()
    end = data.rfind(END_OF_IMAGE)
    if end < 0:
        return False
    filled = data[:end] + FILLER + data[end:]
    with Image.open(io.BytesIO(filled), formats=('JPEG', )) as again:
        again.load()
        return again.tobytes() != image.tobytes()
