"""Safe loading and atomic writing of checkpoints.

PyTorch >= 2.6 unpickles checkpoints with ``weights_only=True``: only
tensors, containers and allow-listed classes are rebuilt, so a file crafted
to run code when unpickled is refused. mmengine 0.10 calls ``torch.load``
without allow-listing the objects its own Runner writes (the message hub's
``HistoryBuffer`` with numpy arrays), so its checkpoints fail to load.

mmcal replaces mmengine's loader of local paths with one that keeps
``weights_only=True`` and allow-lists exactly those objects, for the
duration of the load only. Files holding anything else are refused with an
error naming the file and the offending global. Loading such a file
unsafely is an explicit opt-in: the ``--unsafe-load`` flag of mmcal's
tools, or ``MMCAL_UNSAFE_LOAD=1`` in the environment, for files you trust.

Saving goes through mmengine's local file backend, replaced here by one that
writes to a temporary file in the same folder and renames it into place, so
a process killed while saving leaves the previous file intact.
"""
import argparse
import os
import os.path as osp
import pickle
import zipfile
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .fileio import write_atomically

UNSAFE_LOAD_ENV = 'MMCAL_UNSAFE_LOAD'


def _history_buffer_method(owner, name: str):
    """Stands in for ``getattr`` while unpickling a checkpoint.

    A pickled ``HistoryBuffer`` names its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; allowing the real ``getattr`` would
    let a file read any attribute of any object it can build.
    """
    # The built-in statistics are only entered into _statistics_methods by
    # the first HistoryBuffer built in this process.
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint')


def checkpoint_safe_globals() -> list:
    """Objects besides tensors that mmengine Runner checkpoints hold."""
    scalar_types = [
        type(np.dtype(name)) for name in np.sctypeDict.values()
        if isinstance(name, type)
    ]
    return [
        HistoryBuffer,
        np.core.multiarray._reconstruct,
        np.core.multiarray.scalar,
        np.ndarray,
        np.dtype,
        *set(scalar_types),
        (_history_buffer_method, 'builtins.getattr'),
    ]


def unsafe_load_allowed() -> bool:
    return os.environ.get(UNSAFE_LOAD_ENV, '') not in ('', '0', 'false')


def _unpickler_reason(error: Exception) -> str:
    """The line of torch's refusal that names what was refused."""
    text = str(error).split('WeightsUnpickler error:')[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines or ['refused'])[0]


def load_checkpoint_file(filename: Union[str, Path], map_location=None):
    """Load a local checkpoint file with weights-only unpickling.

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: the file is truncated or not a checkpoint, or holds
            objects outside the allow-list (unless unsafe loading is
            enabled), naming the file.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint file not found: {filename}')
    if unsafe_load_allowed():
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as error:
        raise RuntimeError(
            f'Refused to load checkpoint {filename}: it holds objects '
            'that are not plain weights, so unpickling it could run code '
            f'({_unpickler_reason(error)}). If you trust this file, load '
            f'it with --unsafe-load or {UNSAFE_LOAD_ENV}=1.') from None
    except (zipfile.BadZipFile, EOFError, RuntimeError) as error:
        raise RuntimeError(
            f'Cannot read checkpoint {filename}: the file is truncated or '
            f'not a PyTorch checkpoint ({error})') from None


@CheckpointLoader.register_scheme(prefixes='', force=True)
def _load_local_checkpoint(filename, map_location):
    return load_checkpoint_file(filename, map_location)


@register_backend('local', prefixes='', force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend whose ``put`` replaces files atomically."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        write_atomically(obj, filepath)


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` without a path continues from.

    mmengine follows ``work_dir/last_checkpoint``, a file it writes
    non-atomically after each save. When that file is missing, empty or
    points to a file that is gone (a kill at the wrong moment), the newest
    ``*.pth`` in ``work_dir`` is taken instead of failing.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as file:
            named = file.read().strip()
        if named and osp.isfile(named):
            return named
    candidates = [
        osp.join(work_dir, name) for name in os.listdir(work_dir)
        if name.endswith('.pth')
    ] if osp.isdir(work_dir) else []
    return max(candidates, key=osp.getmtime, default=None)


class _AllowUnsafeLoad(argparse.Action):
    """``--unsafe-load``: turns on unsafe loading for this process."""

    def __call__(self, parser, namespace, values, option_string=None):
        os.environ[UNSAFE_LOAD_ENV] = '1'
        setattr(namespace, self.dest, True)


def add_unsafe_load_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--unsafe-load`` flag shared by mmcal's command-line tools."""
    parser.add_argument(
        '--unsafe-load',
        action=_AllowUnsafeLoad,
        nargs=0,
        default=False,
        help='load checkpoints with full unpickling (only for files you '
        'trust: it can run code)')
