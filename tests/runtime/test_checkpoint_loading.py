import argparse

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

from mmcal.runtime import (UNSAFE_LOAD_ENV, add_unsafe_load_argument,
                           load_checkpoint_file, unsafe_load_allowed)
from mmcal_test_utils import shell_payload


class WritesFileWhenUnpickled:
    """A pickle payload: unpickling it calls ``open(path, 'w')``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def runner_like_checkpoint():
    history = HistoryBuffer()
    history.update(0.5)
    history.update(np.float64(0.25))
    return dict(
        meta=dict(seed=np.int64(3), epoch=1, lr=np.float32(0.1)),
        message_hub=dict(log_scalars={'train/loss': history}),
        state_dict={'head.fc.weight': torch.arange(6.).view(2, 3)},
        optimizer={'state': {}, 'param_groups': [{'lr': 0.1}]})


def test_runner_checkpoint_loads_weights_only(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(runner_like_checkpoint(), path)
    loaded = _load_checkpoint(path)  # mmengine's entry point
    history = loaded['message_hub']['log_scalars']['train/loss']
    assert history.mean() == pytest.approx(0.375)
    assert loaded['meta']['seed'] == 3
    assert torch.equal(loaded['state_dict']['head.fc.weight'],
                       torch.arange(6.).view(2, 3))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    victim = tmp_path / 'written_by_pickle'
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': WritesFileWhenUnpickled(
        str(victim))}, path)
    with pytest.raises(RuntimeError, match='Refused to load checkpoint') as e:
        _load_checkpoint(path)
    assert path in str(e.value)
    assert '--unsafe-load' in str(e.value)
    assert not victim.exists()


@pytest.mark.parametrize('legacy_format', [False, True])
def test_refusal_names_the_refused_global_and_file(tmp_path, monkeypatch,
                                                   legacy_format):
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    victim = tmp_path / 'touched'
    path = str(tmp_path / 'shell.pth')
    torch.save({'state_dict': {}, 'x': shell_payload(
        f'touch {victim}')}, path,
               _use_new_zipfile_serialization=not legacy_format)
    with pytest.raises(RuntimeError) as error:
        _load_checkpoint(path)
    assert str(error.value).startswith(
        f'Refused to load checkpoint {path}: it names posix.system, which is '
        'not allowed.')
    assert 'Weights only load failed' not in str(error.value)
    assert not victim.exists()


# Raw pickles (torch's legacy format starts with one) that break the
# unpickler in each way it can fail.
MALFORMED = {
    'truncated': (b'\x80\x02}q\x00(X\x01\x00\x00\x00a', 'EOFError'),
    'unknown memo': (b'\x80\x02h\x05.', 'KeyError'),
    'empty mark': (b'\x80\x02(K\x01K\x02u.', 'IndexError'),
    'bad arguments': (b'\x80\x02cnumpy\ndtype\n)R.', 'TypeError'),
    'unknown opcode': (b'\x80\x02\xff.', 'Unsupported operand 255'),
    'item on an int': (b'\x80\x02K\x01K\x02K\x03s.', 'SETITEM'),
}


@pytest.mark.parametrize('name', MALFORMED)
def test_malformed_pickle_names_the_file(tmp_path, name):
    data, failure = MALFORMED[name]
    path = str(tmp_path / 'malformed.pth')
    with open(path, 'wb') as file:
        file.write(data)
    with pytest.raises(RuntimeError, match='checkpoint ') as error:
        _load_checkpoint(path)
    assert f'checkpoint {path}:' in str(error.value)
    assert failure in str(error.value)


def test_getattr_stand_in_refuses_other_attributes(tmp_path):
    # A HistoryBuffer pickles getattr(HistoryBuffer, 'mean'); anything else
    # reached through getattr must stay refused.
    class GetattrPayload:

        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    path = str(tmp_path / 'getattr.pth')
    with open(path, 'wb') as file:
        torch.save({'x': GetattrPayload()}, file)
    with pytest.raises(RuntimeError, match='Refused'):
        load_checkpoint_file(path)


def test_unsafe_opt_in_loads_trusted_legacy_file(tmp_path, monkeypatch):
    marker = tmp_path / 'marker'
    path = str(tmp_path / 'legacy.pth')
    torch.save({'payload': WritesFileWhenUnpickled(str(marker))}, path)
    monkeypatch.setenv(UNSAFE_LOAD_ENV, '1')
    load_checkpoint_file(path)
    assert marker.exists()


def test_missing_checkpoint_is_named(tmp_path):
    path = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        _load_checkpoint(path)


@pytest.mark.parametrize('keep', [0, 10, 200])
def test_truncated_checkpoint_is_named(tmp_path, keep):
    path = str(tmp_path / 'full.pth')
    torch.save(runner_like_checkpoint(), path)
    with open(path, 'rb') as file:
        data = file.read()
    cut = str(tmp_path / 'cut.pth')
    with open(cut, 'wb') as file:
        file.write(data[:keep])
    with pytest.raises(RuntimeError, match='truncated') as error:
        load_checkpoint_file(cut)
    assert cut in str(error.value)


@pytest.mark.parametrize('value', ['1', 'true', 'TRUE', 'Yes', 'on'])
def test_unsafe_opt_in_accepts_explicit_true_values(monkeypatch, value):
    monkeypatch.setenv(UNSAFE_LOAD_ENV, value)
    assert unsafe_load_allowed()


@pytest.mark.parametrize('value', [None, '', '0', 'false', 'No', 'OFF'])
def test_unsafe_opt_in_is_off_for_false_values(tmp_path, monkeypatch, value):
    if value is None:
        monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    else:
        monkeypatch.setenv(UNSAFE_LOAD_ENV, value)
    assert not unsafe_load_allowed()
    victim = tmp_path / 'written_by_pickle'
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': WritesFileWhenUnpickled(str(victim))}, path)
    with pytest.raises(RuntimeError, match='Refused'):
        load_checkpoint_file(path)
    assert not victim.exists()


@pytest.mark.parametrize('value', ['n', 'y', '0.0', '2', ' yes', 'enable'])
def test_unsafe_opt_in_refuses_unknown_values(tmp_path, monkeypatch, value):
    monkeypatch.setenv(UNSAFE_LOAD_ENV, value)
    path = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': {}}, path)
    with pytest.raises(ValueError) as error:
        load_checkpoint_file(path)
    assert f'{UNSAFE_LOAD_ENV}={value!r} is not understood' in str(error.value)
    assert '1, true, yes, on' in str(error.value)
    assert '0, false, no, off' in str(error.value)


def test_unsafe_load_flag_turns_on_the_opt_in(monkeypatch):
    # setenv (not delenv) so that monkeypatch restores the variable after
    # the flag has set it.
    monkeypatch.setenv(UNSAFE_LOAD_ENV, '0')
    parser = argparse.ArgumentParser()
    add_unsafe_load_argument(parser)
    assert parser.parse_args([]).unsafe_load is False
    assert not unsafe_load_allowed()
    assert parser.parse_args(['--unsafe-load']).unsafe_load is True
    assert unsafe_load_allowed()
