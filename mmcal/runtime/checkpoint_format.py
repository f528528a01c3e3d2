"""A checkpoint file's layout, checked before torch reads it.

torch writes a zip archive: ``data.pkl`` and one record per storage,
stored uncompressed. torch's reader also inflates deflate records and
reads archives whose entries share bytes, so a record can stand for far
more than the file holds. The legacy format (torch < 1.6, still read) is
a sequence of pickles (magic number, protocol, system info, the object,
the storage keys) followed by each listed storage's bytes; torch
allocates every storage the object refers to at the size the pickle
states and fills only those the key list names, so a short list leaves
tensors of uninitialised memory.

Every pickle torch will unpickle is scanned first
(:mod:`mmcal.runtime.pickle_scan`). A file torch cannot parse is left for
torch to report, having built no more than was scanned.
"""
import io
from typing import BinaryIO

import torch

from .checkpoint_limits import CheckpointRefused
from .pickle_scan import scan_pickle

ZIP_MAGIC = b'PK\x03\x04'


def check_zip_checkpoint(file: BinaryIO, file_size: int) -> None:
    """Records fit in the file; ``data.pkl`` passes the scan.

    Sizes are those torch's own zip reader finds, so that no second reader
    disagrees with the one that loads.
    """
    try:
        reader = torch._C.PyTorchFileReader(file)
        records = reader.get_all_records()
        sizes = {name: reader.get_record_size(name) for name in records}
        data = reader.get_record('data.pkl') if 'data.pkl' in sizes else b''
    except RuntimeError:  # torch fails to read it as well
        return
    total = sum(sizes.values())
    if total > file_size:
        raise CheckpointRefused(
            f'its {len(sizes)} zip records hold {total} bytes unpacked, '
            f'more than the {file_size} bytes of the file (records stored '
            'compressed or sharing bytes, which torch.save never writes)')
    scan_pickle(io.BytesIO(data), file_size)


class _CappedReader:
    """``file`` for :mod:`pickletools`, which reads as many bytes as an
    opcode states: a read asks for no more than the file has left, so that
    no buffer of the stated size is allocated."""

    def __init__(self, file: BinaryIO, file_size: int):
        self.file, self.file_size = file, file_size

    def read(self, count: int = -1) -> bytes:
        left = max(0, self.file_size - self.file.tell())
        return self.file.read(left if count < 0 else min(count, left))

    def readline(self) -> bytes:
        return self.file.readline()

    def tell(self) -> int:
        return self.file.tell()


def check_legacy_checkpoint(file: BinaryIO, file_size: int) -> None:
    """Each pickle passes the scan; the storages fit in the file and the
    key list names every one of them."""
    file = _CappedReader(file, file_size)
    magic = scan_pickle(file, file_size)
    if magic.value != torch.serialization.MAGIC_NUMBER:
        return  # not a legacy checkpoint: torch says so
    for _ in range(2):  # protocol, system information
        if not scan_pickle(file, file_size).complete:
            return
    scanned = scan_pickle(file, file_size)
    sizes = {}
    for storage in scanned.storages:
        sizes.setdefault(storage.key, storage.nbytes)
    total = sum(sizes.values())
    if total > file_size:
        raise CheckpointRefused(
            f'its {len(sizes)} storages claim {total} bytes, more than the '
            f'{file_size} bytes of the file')
    if not scanned.complete:
        return
    keys = scan_pickle(file, file_size)
    if not keys.complete:
        return
    if type(keys.value) is not list or not all(
            type(key) is str for key in keys.value):
        raise CheckpointRefused(
            f'its list of storage keys ({keys.value!r:.80}) is not a list of '
            'names')
    unread = [key for key in sizes if key not in keys.value]
    if unread:
        raise CheckpointRefused(
            f'its storage list leaves {len(unread)} of {len(sizes)} '
            f'storages unread (key {unread[0]!r:.40}), so their tensors '
            'would hold uninitialised memory')
    listed = sum(8 + sizes.get(key, 0) for key in keys.value)
    if file.tell() + listed > file_size:
        raise CheckpointRefused(
            f'its storages need {listed} bytes after byte {file.tell()}, '
            f'but the file ends at {file_size}')


def check_checkpoint_layout(file: BinaryIO, file_size: int) -> None:
    """Check a checkpoint read from ``file`` (at its start, seekable) of
    ``file_size`` bytes before torch loads it; leaves ``file`` anywhere.

    Raises:
        CheckpointRefused: saying why.
    """
    if file.read(4) == ZIP_MAGIC:
        file.seek(0)
        check_zip_checkpoint(file, file_size)
    else:
        file.seek(0)
        check_legacy_checkpoint(file, file_size)
