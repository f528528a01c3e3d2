"""Writing files so that readers never see half of them.

Checkpoints are saved through :class:`AtomicLocalBackend`, which
:mod:`mmcal.runtime.patches` registers as mmengine's local backend: a
process killed while saving leaves the previous checkpoint intact.
"""
import os
import os.path as osp
import secrets
import stat
from pathlib import Path
from typing import Tuple, Union

from mmengine.fileio import LocalBackend

# What ``open(path, 'w')`` asks for; the kernel takes the umask (and a
# folder's default ACL) off it.
NEW_FILE_MODE = 0o666


def check_writable(path: Union[str, Path], option: str = '--out') -> None:
    """Refuse a ``path`` that :func:`write_atomically` could not write, so
    that a tool stops before its work rather than after it.

    Raises:
        ValueError: naming ``option`` and ``path``: it is (or ends with
            ``/`` like) a folder, or another non-regular file (a device, a
            FIFO, a dangling link), a part of its
            folder is a file, or the nearest existing folder is not
            writable (:func:`write_atomically` creates the missing ones).
    """
    if str(path).endswith(('/', os.sep)):
        raise ValueError(f'{option} {path} names a folder: give a file name')
    path = osp.abspath(path)
    if osp.lexists(path) and not osp.isfile(path):
        kind = 'a folder' if osp.isdir(path) else 'not a regular file'
        raise ValueError(f'{option} {path} is {kind}: give a file name')
    folder = osp.dirname(path)
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        raise ValueError(f'{option} {path}: {folder} is a file, not a folder')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f'{option} {path}: folder {folder} is not writable')


def open_temporary(path: str) -> Tuple[int, str]:
    """A new file beside ``path``, open for writing: ``(descriptor,
    name)``.

    Created as ``open(path, 'w')`` would create ``path`` (mode 0666 less
    the umask), or with the permissions of the existing ``path`` that it
    is to replace: ``tempfile.mkstemp`` would make every file 0600.
    """
    folder, base = osp.split(osp.abspath(path))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    while True:
        temporary = osp.join(folder, f'.{base}.{secrets.token_hex(4)}.tmp')
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             NEW_FILE_MODE)
        except FileExistsError:
            continue
        if mode is not None and stat.S_ISREG(mode):
            os.fchmod(handle, stat.S_IMODE(mode) & 0o777)
        return handle, temporary


def write_atomically(data: Union[bytes, str], path: Union[str, Path]) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it.

    A process killed or failing while writing leaves ``path`` as it was
    (absent or the previous version) and no temporary file. Missing
    folders are created; the file gets the permissions ``open(path, 'w')``
    gives (see :func:`open_temporary`); text is written as UTF-8.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    handle, temporary = open_temporary(str(path))
    try:
        with os.fdopen(handle, 'wb') as f:
            f.write(data if isinstance(data, bytes) else data.encode('utf-8'))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if osp.exists(temporary):
            os.remove(temporary)
        raise


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, whose ``put`` (the one write of a
    checkpoint save) replaces the file atomically."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        write_atomically(obj, filepath)
