"""Safe loading of checkpoints.

PyTorch >= 2.6 unpickles checkpoints with ``weights_only=True``: only
tensors, containers and allow-listed globals are rebuilt, so a file crafted
to run code when unpickled is refused. mmengine 0.10 calls ``torch.load``
without allow-listing the objects its own Runner writes (the message hub's
``HistoryBuffer`` with numpy arrays), so its checkpoints fail to load, and
its URL loaders unpickle downloaded files with ``weights_only=False``.

mmcal loads every checkpoint, from any source (see
:mod:`mmcal.runtime.checkpoint_sources`), with :func:`load_checkpoint_from`:
weights-only unpickling with exactly those objects allowed, through the
stand-ins of :mod:`mmcal.runtime.safe_unpickling`. Files holding anything
else are refused with an error naming the file and the offending global.
Loading such a file unsafely is an explicit opt-in: the ``--unsafe-load``
flag of mmcal's tools, or ``MMCAL_UNSAFE_LOAD=1`` in the environment, for
files you trust.
"""
import argparse
import io
import os
import os.path as osp
import pickle
import re
from pathlib import Path
from typing import Union

import torch

from .safe_unpickling import checkpoint_safe_globals, restore_arrays

UNSAFE_LOAD_ENV = 'MMCAL_UNSAFE_LOAD'
_TRUE_VALUES = ('1', 'true', 'yes', 'on')
_FALSE_VALUES = ('', '0', 'false', 'no', 'off')


def unsafe_load_allowed() -> bool:
    """Whether ``MMCAL_UNSAFE_LOAD`` opts in to unsafe loading.

    Only explicit values count, in any case; anything else is an error
    rather than a guess, since guessing "no" as yes would run code.
    """
    value = os.environ.get(UNSAFE_LOAD_ENV, '')
    if value.lower() in _TRUE_VALUES:
        return True
    if value.lower() in _FALSE_VALUES:
        return False
    raise ValueError(
        f'{UNSAFE_LOAD_ENV}={value!r} is not understood: set it to one of '
        f'{", ".join(_TRUE_VALUES)} to load checkpoints unsafely, or to one '
        f'of {", ".join(_FALSE_VALUES[1:])} (or leave it empty or unset) for '
        'safe loading')


def _refusal_reason(error: pickle.UnpicklingError) -> str:
    """What was refused, without PyTorch's boilerplate around it."""
    # torch re-raises the unpickler's own error with advice around it; the
    # original is kept as the context of the one it raises.
    original = str(error.__context__ or error)
    refused_global = re.search(r'GLOBAL (\S+)', original)
    if refused_global:
        return f'it names {refused_global.group(1)}, which is not allowed'
    return original.strip().splitlines()[0] if original.strip() else 'refused'


def load_checkpoint_from(source: Union[str, io.IOBase],
                         name: str,
                         map_location=None):
    """Load a checkpoint from a path or file object with safe unpickling.

    ``name`` (the path, or where the bytes came from) is named in errors.

    Raises:
        RuntimeError: the file holds objects outside the allow-list
            (unless unsafe loading is enabled), or is truncated or not a
            checkpoint, naming the file.
        ValueError: ``MMCAL_UNSAFE_LOAD`` has a value that is not understood.
    """
    unsafe = unsafe_load_allowed()
    try:
        if unsafe:
            return torch.load(source, map_location=map_location,
                              weights_only=False)
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return restore_arrays(
                torch.load(source, map_location=map_location,
                           weights_only=True))
    except pickle.UnpicklingError as error:
        if not unsafe:
            raise RuntimeError(
                f'Refused to load checkpoint {name}: '
                f'{_refusal_reason(error)}. It holds objects other than '
                'tensors, containers and plain numpy arrays and scalars, so '
                'unpickling it could run code. If you trust this file, load '
                f'it with --unsafe-load or {UNSAFE_LOAD_ENV}=1.') from None
        failure = error
    except Exception as error:  # any other failure of a malformed file
        failure = error
    raise RuntimeError(
        f'Cannot read checkpoint {name}: the file is truncated or not a '
        f'PyTorch checkpoint ({type(failure).__name__}: {failure})')


def load_checkpoint_file(filename: Union[str, Path], map_location=None):
    """Load a local checkpoint file with safe unpickling.

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: as :func:`load_checkpoint_from`.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint file not found: {filename}')
    return load_checkpoint_from(filename, filename, map_location)


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
