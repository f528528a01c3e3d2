"""Checkpoint files an attacker writes by hand: raw pickles, zip records
and tensor views no honest ``torch.save`` produces, and a process that
loads them where a crash cannot take the tests down."""
import io
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile
import zlib
from collections import OrderedDict

import torch

from mmcal_test_utils import PickledAs


def write_zip_checkpoint(path, data_pkl: bytes, storages=None):
    """A zip-format checkpoint with the given ``data.pkl`` and storage
    records (key -> bytes), as torch.save lays it out."""
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('archive/data.pkl', data_pkl)
        archive.writestr('archive/byteorder', 'little')
        for key, data in (storages or {}).items():
            archive.writestr(f'archive/data/{key}', data)
        archive.writestr('archive/version', '3')


def zeros_deflated(size_mib: int) -> bytes:
    """A raw deflate stream of ``size_mib`` MiB of zeros, made in the time
    of compressing one: after a full flush, each further MiB compresses
    to the same bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = bytes(1 << 20)
    first = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert first == again
    return first * size_mib + compressor.flush()


def write_raw_zip(path, records) -> None:
    """A zip archive of (name, method, data, unpacked size) records, the
    sizes and methods written as given (the CRC only of stored data)."""
    local, central = b'', b''
    for name, method, data, size in records:
        crc = zlib.crc32(data) if method == zipfile.ZIP_STORED else 0
        fields = struct.pack('<HHHHHIIIH', 20, 0, method, 0, 0x21, crc,
                             len(data), size, len(name))
        central += (b'PK\x01\x02' + struct.pack('<H', 20) + fields +
                    struct.pack('<HHHHII', 0, 0, 0, 0, 0, len(local)) +
                    name.encode())
        local += b'PK\x03\x04' + fields + b'\0\0' + name.encode() + data
    end = b'PK\x05\x06' + struct.pack(
        '<HHHHIIH', 0, 0, len(records), len(records), len(central),
        len(local), 0)
    with open(path, 'wb') as file:
        file.write(local + central + end)


class Storage:
    """Pickled as torch's persistent id of a storage."""

    def __init__(self, key, numel, storage_type=torch.FloatStorage,
                 legacy=False, view=None):
        # The legacy format adds view metadata: None for a whole storage,
        # or (key, offset, size) of a view of it.
        self.pid = ('storage', storage_type, key, 'cpu', numel) + (
            (view, ) if legacy else ())


class _StoragePickler(pickle.Pickler):

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def tensor_pickle(obj) -> bytes:
    """``obj`` pickled as torch pickles it: :class:`Storage` objects as
    persistent ids (protocol 2, as torch.save writes)."""
    buffer = io.BytesIO()
    _StoragePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def tensor_view(storage: Storage, offset, size, stride):
    """A tensor rebuilt by torch from ``storage`` with this view."""
    return PickledAs(torch._utils._rebuild_tensor_v2,
                     (storage, offset, tuple(size), tuple(stride), False,
                      OrderedDict()))


def deep_tuple_key(depth: int) -> bytes:
    """``{((...((),)...),): 1}``: a dict key nested ``depth`` tuples deep,
    which torch's unpickler hashes in C."""
    return b'\x80\x02}' + b')' + b'\x85' * depth + b'K\x01s.'


def deep_list(depth: int) -> bytes:
    """``[[[...]]]`` nested ``depth`` lists deep."""
    return b'\x80\x02' + b']' * depth + b'a' * (depth - 1) + b'.'


def _text(text: str) -> bytes:
    return b'X' + len(text).to_bytes(4, 'little') + text.encode()


def billion_laughs(levels: int, width: int) -> bytes:
    """``{'meta': {'dataset_meta': {'classes': L, ...}}}`` where ``L`` holds
    ``width`` references to a list of ``width`` references ... ``levels``
    times over a one-letter string: ``width ** levels`` names. The levels
    are built inside a tuple (torch's unpickler has no POP)."""
    laughs = _text('a') + b'q\x00'
    for level in range(levels):
        laughs += b'](' + (b'h' + bytes([level])) * width + b'eq' + bytes(
            [level + 1])
    dataset_meta = (b'}(' + _text('levels') + b'(' + laughs + b't' +
                    _text('classes') + b'h' + bytes([levels]) + b'u')
    return (b'\x80\x02}(' + _text('meta') + b'}(' + _text('dataset_meta') +
            dataset_meta + b'uu.')


def legacy_pickles(path) -> list:
    """The five pickles of a legacy-format file and the storage bytes."""
    with open(path, 'rb') as file:
        data = file.read()
    stream, parts = io.BytesIO(data), []
    for _ in range(5):
        start = stream.tell()
        for _ in pickletools.genops(stream):
            pass
        parts.append(data[start:stream.tell()])
    return parts + [data[stream.tell():]]


def write_legacy(path, parts) -> None:
    with open(path, 'wb') as file:
        file.write(b''.join(parts))


LOAD_EACH = """
import sys
import mmcal
from mmengine.runner.checkpoint import CheckpointLoader
refused = 0
for path in sys.argv[1:]:
    try:
        CheckpointLoader.load_checkpoint(path)
    except (RuntimeError, FileNotFoundError) as error:
        refused += 1
        print('REFUSED', str(error).replace('\\n', '\\\\n'), flush=True)
    else:
        print('LOADED', path, flush=True)
sys.exit(1 if refused else 0)
"""


def load_in_subprocess(paths, env=None, timeout=120):
    """(exit code, one line per file) of loading each file through
    mmengine's entry point in a fresh process."""
    done = subprocess.run([sys.executable, '-c', LOAD_EACH, *map(str, paths)],
                          capture_output=True, text=True, timeout=timeout,
                          env=env)
    # A negative code is a signal: the loader crashed instead of refusing.
    assert done.returncode >= 0, (done.returncode, done.stderr[-2000:])
    lines = [line for line in done.stdout.splitlines()
             if line.startswith(('REFUSED', 'LOADED'))]
    assert len(lines) == len(paths), (done.stdout, done.stderr[-2000:])
    return done.returncode, lines
