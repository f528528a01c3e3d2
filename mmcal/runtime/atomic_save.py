"""Writing files so that readers never see half of them.

Checkpoints are saved through :class:`AtomicLocalBackend`, which
:mod:`mmcal.runtime.patches` registers as mmengine's local backend: a
process killed while saving leaves the previous checkpoint intact.
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend


def write_atomically(data: Union[bytes, str], path: Union[str, Path]) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it.

    A process killed or failing while writing leaves ``path`` as it was
    (absent or the previous version) and no temporary file.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'wb' if isinstance(data, bytes) else 'w') as f:
            f.write(data)
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
