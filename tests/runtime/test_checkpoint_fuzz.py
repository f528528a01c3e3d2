"""Fuzzing the checkpoint loader: pickle opcode streams and tensor views.

hypothesis writes files of random opcodes (those torch's weights-only
unpickler runs, with deep nesting and repeated memo references among them,
and some it does not run) in the zip and the legacy format, and tensors of
random sizes, strides and offsets over random storages. Each is loaded
in a long-lived worker process, which also reads every element of what it
loaded: the worker must never die by a signal or stop answering, and each
file must either load or be refused with an error naming it.
"""
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crafted_checkpoints import (Storage, tensor_pickle, tensor_view,
                                 write_zip_checkpoint)

WORKER = """
import sys
import torch
import mmcal
from mmengine.runner.checkpoint import CheckpointLoader

def read_all(value, seen):
    # Every element of every tensor, as a consumer of the checkpoint would.
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        if value.device.type != 'meta' and value.layout is torch.strided:
            value.clone().double().sum()
    elif isinstance(value, dict):
        for item in value.values():
            read_all(item, seen)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            read_all(item, seen)

for line in sys.stdin:
    path = line.rstrip('\\n')
    try:
        read_all(CheckpointLoader.load_checkpoint(path), set())
    except RuntimeError as error:
        message = str(error).replace('\\n', ' ')
        named = message.startswith((f'Refused to load checkpoint {path}: ',
                                    f'Cannot read checkpoint {path}: '))
        print('ANSWER', 'REFUSED' if named else 'UNNAMED', message,
              flush=True)
    except BaseException as error:
        print('ANSWER UNEXPECTED', type(error).__name__, str(error)[:500],
              flush=True)
    else:
        print('ANSWER LOADED', flush=True)
"""
# Seconds one file may take to load before the worker counts as hung.
ANSWER_TIMEOUT = 60


class Worker:
    """The loader in a process of its own, restarted after a failure.

    A thread reads its output, so that waiting for an answer can time out.
    """

    def __init__(self):
        self.process = None

    def _start(self):
        self.process = subprocess.Popen(
            [sys.executable, '-c', WORKER], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, OMP_NUM_THREADS='1'))
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout,
                                                  self.lines),
                         daemon=True).start()

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.put(line)
        lines.put(None)  # the process ended

    def load(self, path: str) -> str:
        if self.process is None or self.process.poll() is not None:
            self._start()
        self.process.stdin.write(path + '\n')
        self.process.stdin.flush()
        answer = ''
        while not answer.startswith('ANSWER '):  # not mmengine's log lines
            try:
                answer = self.lines.get(timeout=ANSWER_TIMEOUT)
            except queue.Empty:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f'the loader hung on {path}') from None
            if answer is None:
                code = self.process.wait()
                raise AssertionError(f'the loader died with code {code} on '
                                     f'{path}')
        return answer[len('ANSWER '):].rstrip('\n')

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


@pytest.fixture(scope='module')
def worker():
    process = Worker()
    yield process
    process.close()


GLOBALS = [
    'collections\nOrderedDict', 'collections\nCounter', 'torch\nSize',
    'torch._utils\n_rebuild_tensor_v2', 'torch._utils\n_rebuild_parameter',
    'torch\nFloatStorage', 'torch\nLongStorage', 'torch\ndevice',
    'builtins\nset', 'builtins\nbytearray', '_codecs\nencode',
    'numpy._core.multiarray\n_reconstruct', 'numpy\nndarray',
    'numpy\ndtype', 'numpy._core.multiarray\nscalar', '__builtin__\ngetattr',
    'mmengine.logging.history_buffer\nHistoryBuffer', 'posix\nsystem'
]
# Opcodes without arguments that torch's unpickler runs.
PLAIN_OPCODES = [bytes([code]) for code in b'(t\x85\x86\x87)]}\x8faesuR\x81bN'
                 b'\x88\x89Q.']

small_int = st.integers(0, 255).map(lambda n: b'K' + bytes([n]))
text = st.text(max_size=8).map(
    lambda t: b'X' + len(t.encode('utf-8', 'surrogatepass')).to_bytes(
        4, 'little') + t.encode('utf-8', 'surrogatepass'))
memo = st.tuples(st.sampled_from([b'q', b'h']), st.integers(0, 4)).map(
    lambda op: op[0] + bytes([op[1]]))
named_global = st.sampled_from(GLOBALS).map(
    lambda name: b'c' + name.encode() + b'\n')
# Tuples nested up to 300 deep, or 200,000 (a C stack's worth), alone or
# as the key of a dict, which torch hashes.
depth = st.one_of(st.integers(0, 300), st.just(200_000))
nesting = depth.map(lambda depth: b')' + b'\x85' * depth)
deep_key = depth.map(lambda depth: b'})' + b'\x85' * depth + b'K\x01s')
laughs = st.integers(1, 60).map(lambda width: b'](' + b'h\x00' * width +
                                b'e')
storage_id = st.integers(0, 2**40).map(
    lambda numel: b'(X\x07\x00\x00\x00storagectorch\nFloatStorage\n'
    b'X\x01\x00\x00\x000X\x03\x00\x00\x00cpu\x8a\x06' +
    numel.to_bytes(6, 'little') + b'tQ')
any_byte = st.binary(min_size=1, max_size=1)
token = st.one_of(
    st.sampled_from(PLAIN_OPCODES), small_int, text, memo, named_global,
    nesting, deep_key, laughs, storage_id, any_byte)
# Half the streams build the value of a dict entry, as checkpoints are.
opcode_stream = st.tuples(st.lists(token, max_size=60), st.booleans()).map(
    lambda drawn: b'\x80\x02' + (b'}(X\x01\x00\x00\x00k' if drawn[1] else
                                 b'') + b''.join(drawn[0]) +
    (b'u' if drawn[1] else b'') + b'.')


def legacy_file(stream: bytes, keys: bytes) -> bytes:
    """The legacy format around ``stream``: magic number, protocol, system
    information, the object, its storage keys, then storage bytes."""
    header = [torch.serialization.MAGIC_NUMBER,
              torch.serialization.PROTOCOL_VERSION, {}]
    return b''.join(pickle.dumps(part, protocol=2) for part in header) + \
        stream + keys + bytes(64)


FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def check(worker, write):
    """Load the file ``write(path)`` writes: it loads or is refused by
    name."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'fuzz.pth')
        write(path)
        answer = worker.load(path)
    assert answer.startswith(('LOADED', 'REFUSED')), answer


def write_bytes(data: bytes):

    def write(path):
        with open(path, 'wb') as file:
            file.write(data)

    return write


@FUZZ
@given(stream=opcode_stream, layout=st.sampled_from(['zip', 'legacy']),
       keys=st.sampled_from([b'\x80\x02].', b'\x80\x02]X\x01\x00\x00\x000a.',
                             b'\x80\x02K\x01.']))
def test_opcode_streams_load_or_are_refused_by_name(worker, stream, layout,
                                                    keys):
    if layout == 'zip':
        check(worker, lambda path: write_zip_checkpoint(
            path, stream, {'0': bytes(16)}))
    else:
        check(worker, write_bytes(legacy_file(stream, keys)))


# Storage types and their item sizes.
STORAGE_TYPES = {torch.FloatStorage: 4, torch.LongStorage: 8,
                 torch.HalfStorage: 2, torch.BoolStorage: 1,
                 torch.ByteStorage: 1}


@FUZZ
@given(storage_type=st.sampled_from(list(STORAGE_TYPES)),
       numel=st.integers(0, 64),
       # Bytes stored beyond (or short of) what the storage needs.
       surplus=st.sampled_from([0, 0, 0, 0, -1, 3, 300]),
       offset=st.integers(0, 8),
       view=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 12)),
                     max_size=4),
       copies=st.integers(1, 3))
def test_tensor_views_load_or_are_refused_by_name(worker, storage_type,
                                                  numel, surplus, offset,
                                                  view, copies):
    storage = Storage('0', numel, storage_type)
    size = [length for length, _ in view]
    stride = [step for _, step in view]
    data = tensor_pickle({
        'state_dict': {f'w{index}': tensor_view(storage, offset, size,
                                                stride)
                       for index in range(copies)},
        'optimizer': {'state': {0: {'momentum_buffer': tensor_view(
            storage, offset, size[::-1], stride)}}}})
    stored = max(0, numel * STORAGE_TYPES[storage_type] + surplus)
    check(worker, lambda path: write_zip_checkpoint(
        path, data, {'0': bytes(stored)}))
