"""Checkpoints that would crash, exhaust or mislead the loader are refused.

Each file is crafted here as an attacker would write it. They are loaded
in a separate process: on a loader without these checks, torch crashes
(the C stack overflows), allocates what the file claims, or hands back
tensors that alias or were never read.
"""
import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from crafted_checkpoints import (Storage, billion_laughs, deep_list,
                                 deep_tuple_key, legacy_pickles,
                                 load_in_subprocess, tensor_pickle,
                                 tensor_view, write_legacy, write_raw_zip,
                                 write_zip_checkpoint, zeros_deflated)
from mmcal.runtime import EXPANSION_ENV, UNSAFE_LOAD_ENV


def zipped(data_pkl, storages=None):
    return lambda path: write_zip_checkpoint(path, data_pkl, storages)


def saved(obj, legacy=False):
    return lambda path: torch.save(
        obj, path, _use_new_zipfile_serialization=not legacy)


def legacy_with(part_index, replacement, obj=None):
    """A legacy-format save of ``obj`` with one of its pickles replaced."""

    def write(path):
        torch.save(obj or {'w': torch.ones(3), 'b': torch.zeros(2)}, path,
                   _use_new_zipfile_serialization=False)
        parts = legacy_pickles(path)
        parts[part_index] = replacement(parts[part_index])
        write_legacy(path, parts)

    return write


def history(log, count, max_length=10):
    buffer = HistoryBuffer()
    buffer.max_length = max_length
    buffer._log_history, buffer._count_history = log, count
    return {'message_hub': {'log_scalars': {'train/loss': buffer}}}


def self_holding_list():
    # [L] where L = [L]: EMPTY_LIST, BINPUT 0, BINGET 0, APPEND
    return b'\x80\x02]q\x00h\x00a.'


MB = 1 << 20
stride0 = torch.zeros(1).view(1, 1).expand(16, 27)
# name: (writes the file, text the refusal must show)
ATTACKS = {
    'deep_tuple_key': (zipped(deep_tuple_key(200_000)),
                       'its containers nest more than 100 levels deep'),
    'deep_list': (zipped(deep_list(100_000)),
                  'nest more than 100 levels deep'),
    'deep_legacy_system_info': (legacy_with(
        2, lambda _: deep_tuple_key(200_000)),
        'nest more than 100 levels deep'),
    'deep_legacy_object': (legacy_with(3, lambda _: deep_list(100_000)),
                           'nest more than 100 levels deep'),
    'cycle': (zipped(self_holding_list()), 'its containers hold themselves'),
    'billion_laughs_classes': (
        zipped(billion_laughs(9, 10)),
        'its pickled objects, counting repeated references as copies, '
        f'unpack to 4456790159 bytes, more than {MB} for a file of'),
    # Calls torch's unpickler allows: bytearray(2^30) fills 1 GiB, the
    # legacy torch.FloatTensor(2^30) asks for 4 GiB.
    'bytearray_of_a_gigabyte': (zipped(
        b'\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x40\x85R.'),
        f'unpack to {(1 << 30) + 4} bytes, more than {MB}'),
    'float_tensor_of_4_gigabytes': (zipped(
        b'\x80\x02ctorch\nFloatTensor\nJ\x00\x00\x00\x40\x85R.'),
        f'unpack to {(8 << 30) + 4} bytes, more than {MB}'),
    # Keys 1 + k * (2^61 - 1) all hash to 1: building the dict compares
    # each with all before it (minutes for 200,000).
    'colliding_keys': (zipped(b'\x80\x02}(' + b''.join(
        pickle.dumps(1 + index * ((1 << 61) - 1), protocol=2)[2:-1] +
        b'K\x00' for index in range(20_000)) + b'u.'),
        'it holds more than 64 distinct numbers of one hash'),
    'stride0_momentum': (saved({'optimizer': {'state': {0: {
        'momentum_buffer': stride0}}}}),
        "Tensor ['optimizer']['state'][0]['momentum_buffer']: sizes "
        '(16, 27) with strides (0, 0) make elements share memory'),
    'overlapping_weight': (zipped(tensor_pickle({'state_dict': {
        'w': tensor_view(Storage('0', 8), 0, (4, 4), (1, 1))}}),
        {'0': bytes(32)}), "['state_dict']['w']: sizes (4, 4) with strides "
        '(1, 1) make elements share memory'),
    'view_past_storage': (zipped(tensor_pickle({
        'w': tensor_view(Storage('0', 4), 2, (4, ), (1, ))}),
        {'0': bytes(16)}), 'Trying to resize storage that is not resizable'),
    # 1000 tensors, each a plain view of the whole 1 MiB storage.
    'many_views_of_one_storage': (zipped(tensor_pickle({
        f'w{index}': tensor_view(Storage('0', MB // 4), 0, (MB // 4, ),
                                 (1, )) for index in range(1000)}),
        {'0': bytes(MB)}), f'its tensors unpack to {1000 * MB} bytes, more '
        f'than'),
    'history_stride0_tensor': (saved(history(
        torch.zeros(1).expand(2**31), torch.zeros(1).expand(2**31))),
        "HistoryBuffer ['message_hub']['log_scalars']['train/loss']: "
        '_log_history is Tensor'),
    'history_longer_than_max_length': (saved(history(
        torch.ones(11).numpy(), torch.ones(11).numpy())),
        'histories of lengths 11 and 11 do not match each other or exceed '
        'max_length 10'),
    'history_max_length_text': (saved(history(
        torch.ones(1).numpy(), torch.ones(1).numpy(), '10')),
        "max_length '10' is not a positive int"),
    'legacy_empty_key_list': (legacy_with(4, lambda _: b'\x80\x02].'),
                              'its storage list leaves 2 of 2 storages '
                              'unread'),
    'legacy_one_key_missing': (legacy_with(
        4, lambda part: pickle.dumps(pickle.loads(part)[:1], protocol=2)),
        'leaves 1 of 2 storages unread'),
    # A storage of 2^40 floats: torch would allocate 4 TiB before reading.
    'legacy_huge_storage': (legacy_with(3, lambda _: tensor_pickle({
        'w': tensor_view(Storage('0', 2**40, legacy=True), 0, (1, ),
                         (1, ))})),
        'its 1 storages claim 4398046511104 bytes, more than the'),
    'not_a_dict': (saved([torch.ones(1)]),
                   'it holds a list, not a dict of named entries'),
    'meta_list': (saved({'meta': [1], 'state_dict': {}}),
                  "['meta'] is a list, not a dict"),
    'state_dict_int_key': (saved({'state_dict': {0: torch.ones(1)}}),
                           "['state_dict'] has key 0 of type int, not a "
                           'name'),
    'epoch_text': (saved({'meta': {'epoch': '3'}}),
                   "['meta']['epoch'] is a str, not an int"),
}


def test_crafted_checkpoints_are_refused_without_crash(tmp_path):
    paths = []
    for name, (write, _) in ATTACKS.items():
        paths.append(str(tmp_path / f'{name}.pth'))
        write(paths[-1])
    code, lines = load_in_subprocess(paths)
    assert code == 1
    for path, (name, (_, reason)), line in zip(paths, ATTACKS.items(),
                                               lines):
        assert line.startswith(
            (f'REFUSED Refused to load checkpoint {path}: ',
             f'REFUSED Cannot read checkpoint {path}: ')), (name, line)
        assert reason in line, (name, line)


HONEST = {
    'legacy': {'w': torch.arange(3.), 'history': HistoryBuffer([1.], [1])},
    'zip': {'w': torch.arange(3.), 'meta': {'epoch': 1, 'iter': 9}},
    'channels_last': {'w': torch.ones(2, 3, 4, 5).to(
        memory_format=torch.channels_last)},
    'slice_of_storage': {'w': torch.arange(12.).view(3, 4)[:, 1::2]},
    'empty_and_scalar': {'e': torch.zeros(0, 3), 's': torch.tensor(2.)},
}


@pytest.mark.parametrize('name', HONEST)
def test_honest_checkpoints_load(tmp_path, name):
    path = str(tmp_path / f'{name}.pth')
    torch.save(HONEST[name], path,
               _use_new_zipfile_serialization=name != 'legacy')
    loaded = CheckpointLoader.load_checkpoint(path)
    for key, value in HONEST[name].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(loaded[key], value), key
            assert loaded[key].stride() == value.stride(), key


def test_legacy_storage_view_loads(tmp_path):
    # Files of PyTorch < 0.4 refer to views of storages by key and offset.
    header = [torch.serialization.MAGIC_NUMBER,
              torch.serialization.PROTOCOL_VERSION, {}]
    storage = Storage('0', 4, legacy=True, view=('1', 1, 2))
    path = str(tmp_path / 'view.pth')
    write_legacy(path, [pickle.dumps(part, protocol=2) for part in header] + [
        tensor_pickle({'w': tensor_view(storage, 0, (2, ), (1, ))}),
        pickle.dumps(['0'], protocol=2), (4).to_bytes(8, 'little'),
        torch.arange(4.).numpy().tobytes()])
    loaded = CheckpointLoader.load_checkpoint(path)
    assert torch.equal(loaded['w'], torch.tensor([1., 2.]))


def test_expansion_limit_is_the_setting_the_refusal_names(tmp_path,
                                                          monkeypatch):
    path = str(tmp_path / 'views.pth')
    ATTACKS['many_views_of_one_storage'][0](path)
    with pytest.raises(RuntimeError, match=f'{EXPANSION_ENV}=8 times'):
        CheckpointLoader.load_checkpoint(path)
    monkeypatch.setenv(EXPANSION_ENV, '2000')
    assert len(CheckpointLoader.load_checkpoint(path)) == 1000
    monkeypatch.setenv(EXPANSION_ENV, 'lots')
    with pytest.raises(ValueError, match=f"{EXPANSION_ENV}='lots' is not a "
                       'positive number'):
        CheckpointLoader.load_checkpoint(path)


LOAD_UNDER_MEMORY_LIMIT = """
import resource, sys
import mmcal
from mmengine.runner.checkpoint import CheckpointLoader
with open('/proc/self/status') as status:
    used = next(int(line.split()[1]) * 1024 for line in status
                if line.startswith('VmSize'))
# Room for the loader's work, not for the 1 GiB the file unpacks to.
resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), -1))
CheckpointLoader.load_checkpoint(sys.argv[1])
"""


def test_compressed_record_is_refused_before_it_is_unpacked(tmp_path):
    # A deflate record of 1 GiB of zeros in a 1 MB file: torch's reader
    # would inflate it into a 1 GiB storage.
    numel = (1 << 30) // 4
    data_pkl = tensor_pickle(
        {'w': tensor_view(Storage('0', numel), 0, (numel, ), (1, ))})
    path = str(tmp_path / 'bomb.pth')
    write_raw_zip(path, [
        ('archive/data.pkl', zipfile.ZIP_STORED, data_pkl, len(data_pkl)),
        ('archive/data/0', zipfile.ZIP_DEFLATED, zeros_deflated(1024),
         1 << 30),
        ('archive/version', zipfile.ZIP_STORED, b'3', 1)])
    assert os.path.getsize(path) < 2 * (1 << 20)
    done = subprocess.run([sys.executable, '-c', LOAD_UNDER_MEMORY_LIMIT,
                           path], capture_output=True, text=True,
                          timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert done.returncode == 1, done.stderr[-2000:]
    assert f'Refused to load checkpoint {path}: its 3 zip records hold ' \
        f'{(1 << 30) + len(data_pkl) + 1} bytes unpacked, more than the ' \
        f'{os.path.getsize(path)} bytes of the file' in done.stderr


def test_control_characters_from_the_file_are_escaped(
        tmp_path, monkeypatch):
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    # GLOBAL '\x1b[2J\x1b[31mos system': clears the screen, then red text.
    data = b'\x80\x02c\x1b[2J\x1b[31mos\nsystem\nq\x00.'
    path = str(tmp_path / 'ansi.pth')
    write_zip_checkpoint(path, data)
    with pytest.raises(RuntimeError) as error:
        CheckpointLoader.load_checkpoint(path)
    assert '\x1b' not in str(error.value)
    assert 'it names \\x1b[2J\\x1b[31mos.system' in str(error.value)
