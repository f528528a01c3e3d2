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
import contextlib
import io
import os
import os.path as osp
import pickle
import re
import stat
from pathlib import Path
from typing import Union

import torch
from torch.utils.serialization import config as torch_serialization

from .checkpoint_format import check_checkpoint_layout
from .checkpoint_limits import CheckpointRefused, max_expansion
from .checkpoint_values import check_entry_types, check_values
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


def printable(text: str) -> str:
    """``text`` with control characters escaped, for messages that quote a
    file: bytes such as ANSI escapes then cannot reach the terminal."""
    return ''.join(
        char if char.isprintable() else char.encode(
            'unicode_escape').decode('ascii') for char in text)


def special_file_kind(mode: int) -> str:
    """What a file of ``os.stat`` mode ``mode`` is, or '' if regular."""
    kinds = ((stat.S_ISDIR, 'a directory'),
             (stat.S_ISFIFO, 'a named pipe (FIFO)'),
             (stat.S_ISCHR, 'a character device'),
             (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))
    if stat.S_ISREG(mode):
        return ''
    return next((kind for test, kind in kinds if test(mode)),
                'not a regular file')


def _not_regular(name: str, kind: str) -> RuntimeError:
    return RuntimeError(printable(
        f'Cannot read checkpoint {name}: it is {kind}, not a regular file'))


@contextlib.contextmanager
def _opened(source, name: str):
    """``source`` as a binary file and its size; a path is opened only if
    it is a regular file (a FIFO would block, /dev/zero never end)."""
    if not isinstance(source, (str, os.PathLike)):
        source.seek(0, io.SEEK_END)
        size = source.tell()
        source.seek(0)
        yield source, size
        return
    # Non-blocking, so that opening a FIFO returns at once to be refused.
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, 'rb') as file:
        status = os.fstat(fd)
        kind = special_file_kind(status.st_mode)
        if kind:
            raise _not_regular(name, kind)
        os.set_blocking(fd, True)
        yield file, status.st_size


def _torch_source(file):
    """What to hand ``torch.load`` for the checked, open ``file``.

    torch memory-maps (``load.mmap`` of ``torch.utils.serialization.config``,
    which ``--resume``'s inspection sets) only a file it opens by name: the
    name of the open descriptor in ``/proc`` is the file checked, whatever
    its path names by now. Elsewhere the file is read, not mapped.
    """
    if not torch_serialization.load.mmap:
        return file
    try:
        proc_name = f'/proc/self/fd/{file.fileno()}'
    except (AttributeError, OSError):  # bytes in memory (io.BytesIO)
        return file
    return proc_name if osp.exists(proc_name) else file


def _load_safely(file, size: int, map_location):
    check_checkpoint_layout(file, size)
    file.seek(0)
    source = _torch_source(file)
    with torch.serialization.safe_globals(checkpoint_safe_globals()), \
            torch_serialization.patch({'load.mmap': source is not file}):
        checkpoint = restore_arrays(
            torch.load(source, map_location=map_location, weights_only=True))
    check_entry_types(checkpoint)
    check_values(checkpoint, size)
    return checkpoint


def load_checkpoint_from(source: Union[str, io.IOBase],
                         name: str,
                         map_location=None):
    """Load a checkpoint from a path or file object with safe unpickling.

    ``name`` (the path, or where the bytes came from) is named in errors.
    Before torch unpickles it, the file's layout and pickles are checked
    (:mod:`.checkpoint_format`); after, the values
    (:mod:`.checkpoint_values`).

    Raises:
        RuntimeError: the file holds objects outside the allow-list, would
            unpack beyond the limits of :mod:`.checkpoint_limits` or holds
            values mmengine does not write (unless unsafe loading is
            enabled), is not a regular file, or is truncated or not a
            checkpoint, naming the file.
        ValueError: ``MMCAL_UNSAFE_LOAD`` or ``MMCAL_CHECKPOINT_EXPANSION``
            has a value that is not understood.
    """
    unsafe = unsafe_load_allowed()
    max_expansion()  # a bad value is the user's error, not the file's
    with _opened(source, name) as (file, size):
        try:
            if unsafe:
                return torch.load(file, map_location=map_location,
                                  weights_only=False)
            return _load_safely(file, size, map_location)
        except CheckpointRefused as error:
            raise RuntimeError(printable(
                f'Refused to load checkpoint {name}: {error}')) from None
        except pickle.UnpicklingError as error:
            if not unsafe:
                raise RuntimeError(printable(
                    f'Refused to load checkpoint {name}: '
                    f'{_refusal_reason(error)}. It holds objects other than '
                    'tensors, containers and plain numpy arrays and scalars, '
                    'so unpickling it could run code. If you trust this '
                    f'file, load it with --unsafe-load or {UNSAFE_LOAD_ENV}=1.'
                )) from None
            failure = error
        except Exception as error:  # any other failure of a malformed file
            failure = error
    raise RuntimeError(printable(
        f'Cannot read checkpoint {name}: the file is truncated or not a '
        f'PyTorch checkpoint ({type(failure).__name__}: {failure})'))


def check_checkpoint_path(filename: str) -> None:
    """A local checkpoint path names a regular file.

    Raises:
        FileNotFoundError: nothing is there.
        RuntimeError: it is a directory, FIFO, device or socket.
    """
    try:
        mode = os.stat(filename).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(
            printable(f'Checkpoint file not found: {filename}')) from None
    kind = special_file_kind(mode)
    if kind:
        raise _not_regular(filename, kind)


def load_checkpoint_file(filename: Union[str, Path], map_location=None):
    """Load a local checkpoint file with safe unpickling.

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: as :func:`load_checkpoint_from`.
    """
    filename = osp.expanduser(str(filename))
    check_checkpoint_path(filename)
    return load_checkpoint_from(filename, filename, map_location)


@contextlib.contextmanager
def unsafe_load_scope():
    """Keeps ``--unsafe-load`` to one command: decorates a tool's ``main``.

    The flag sets ``MMCAL_UNSAFE_LOAD`` (so that processes the command
    starts inherit it); its value from before the command is restored when
    the command returns or fails.
    """
    before = os.environ.get(UNSAFE_LOAD_ENV)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(UNSAFE_LOAD_ENV, None)
        else:
            os.environ[UNSAFE_LOAD_ENV] = before


class _AllowUnsafeLoad(argparse.Action):
    """``--unsafe-load``: turns on unsafe loading until the command ends
    (see :func:`unsafe_load_scope`)."""

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
