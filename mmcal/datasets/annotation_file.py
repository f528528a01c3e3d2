"""Reading the text annotation files of data sets, with ``file:line``
errors."""
import codecs
import posixpath
import re
from typing import List, Tuple

from mmengine import fileio


def read_annotation_lines(path: str) -> List[Tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file, stripped, with their
    1-based line numbers.

    Tolerates what editors and other systems leave in such files: a leading
    UTF-8 byte-order mark, CRLF (or CR) line ends, blank lines and trailing
    spaces. ``path`` may be any location mmengine's file backends read.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        ValueError: ``path:line`` of the first line that is not UTF-8 or
            holds a NUL byte.
    """
    try:
        data = fileio.get(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f'Annotation file not found: {path}') from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    lines = []
    # Lines are split as bytes so that a bad byte is reported on its own
    # line (bytes.splitlines splits at \n, \r\n and \r only).
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode('utf-8').strip()
        except UnicodeDecodeError as error:
            raise ValueError(
                f'{path}:{number}: not UTF-8 text (byte '
                f'{raw[error.start:error.start + 1]!r} at column '
                f'{error.start + 1}); save the file as UTF-8') from None
        if '\0' in line:
            # No file name or class name holds one; the OS refuses it
            # later, as a bare "embedded null byte".
            raise ValueError(
                f'{path}:{number}: a NUL byte (\\0) at column '
                f'{raw.index(0) + 1}; text lines must not contain one')
        if line:
            lines.append((number, line))
    return lines


def read_names(path: str) -> List[str]:
    """The names in a file of one name per line (an image list, class
    names), read as :func:`read_annotation_lines` reads: BOM, CRLF and
    blank lines tolerated, ``path:line`` of a line that is not UTF-8."""
    return [line for _, line in read_annotation_lines(path)]


def image_name_key(path: str, number: int, name: str,
                   allow_outside_root: bool = False) -> str:
    """The normalised form of an image name read at ``path:number``, for
    duplicate checks: ``/`` for ``\\``, ``./`` and ``a/..`` folded, so
    that ``x.jpg`` and ``./x.jpg`` are one image.

    Raises:
        ValueError: naming ``path:number`` when the name leaves the folder
            it is relative to (``../x.jpg``, an absolute path or a Windows
            drive) and ``allow_outside_root`` is False: a list would make
            the set read files from elsewhere (another split, or outside
            the data set).
    """
    key = posixpath.normpath(name.replace('\\', '/'))
    outside = (key == '..' or key.startswith('../') or key.startswith('/')
               or re.match('[A-Za-z]:', key))
    if outside and not allow_outside_root:
        raise ValueError(
            f'{path}:{number}: image name {name!r} leaves the image folder; '
            'names are relative to it (pass allow_outside_root=True to '
            'the data set to read such names)')
    return key
