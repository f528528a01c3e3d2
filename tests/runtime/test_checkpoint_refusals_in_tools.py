"""What users run: tools/test.py and tools/train.py with crafted files.

Each crafted checkpoint is one the tool crashed on (exit 139), hung on or
misreported before: the tool must exit 1 with the file and the reason.
"""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from crafted_checkpoints import (deep_tuple_key, legacy_pickles,
                                 write_legacy, write_zip_checkpoint)
from mmcal.runtime import UNSAFE_LOAD_ENV
from mmcal_test_utils import (ROOT, load_tool, shell_payload, tiny_model_cfg,
                              tiny_runner_cfg, write_image_folder)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A config of the tiny model and its freshly built weights."""
    root = tmp_path_factory.mktemp('tiny')
    config = str(root / 'tiny.py')
    Config(tiny_runner_cfg(write_image_folder(str(root / 'data')),
                           str(root / 'work'))).dump(config)
    torch.manual_seed(0)
    state_dict = MODELS.build(tiny_model_cfg()).state_dict()
    return config, state_dict


def legacy_without_storages(state_dict, path):
    """The tiny model in the legacy format with an empty storage-key list:
    torch would hand back every weight as uninitialised memory."""
    torch.save({'state_dict': state_dict, 'meta': {}}, path,
               _use_new_zipfile_serialization=False)
    parts = legacy_pickles(path)
    parts[4] = b'\x80\x02].'
    write_legacy(path, parts)


def run_test_tool(config, checkpoint, work_dir):
    return subprocess.run([
        sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
        work_dir
    ], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))


@pytest.mark.parametrize('craft, reason', [
    ('deep tuple key', 'its containers nest more than 100 levels deep'),
    ('legacy, no storage keys', 'its storage list leaves'),
    ('FIFO', 'it is a named pipe (FIFO), not a regular file'),
])
def test_test_tool_refuses_cleanly(tiny, tmp_path, craft, reason):
    config, state_dict = tiny
    path = str(tmp_path / 'crafted.pth')
    if craft == 'deep tuple key':
        write_zip_checkpoint(path, deep_tuple_key(200_000))
    elif craft == 'FIFO':
        os.mkfifo(path)
    else:
        legacy_without_storages(state_dict, path)
    done = run_test_tool(config, path, str(tmp_path / 'work'))
    # 1: an exception; a negative code or 139 would be a crash, and a
    # timeout a hang.
    assert done.returncode == 1, done.stderr[-3000:]
    assert f'checkpoint {path}: {reason}' in done.stderr


@pytest.mark.parametrize('target', ['/dev/zero', 'folder'])
def test_special_checkpoint_file_is_named_as_what_it_is(
        tiny, tmp_path, target):
    config, _ = tiny
    path = str(tmp_path / 'link.pth')
    if target == 'folder':
        os.mkdir(path)
    else:
        os.symlink(target, path)
    with pytest.raises(RuntimeError) as error:
        load_tool('test.py').main([config, path])
    kind = 'a character device' if target != 'folder' else 'a directory'
    assert str(error.value) == (
        f'Cannot read checkpoint {path}: it is {kind}, not a regular file')


def test_unsafe_load_flag_ends_with_its_command(tiny, tmp_path,
                                                monkeypatch):
    config, state_dict = tiny
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    honest = str(tmp_path / 'honest.pth')
    torch.save({'state_dict': state_dict, 'meta': {}}, honest)
    test_tool = load_tool('test.py')
    test_tool.main([config, honest, '--unsafe-load', '--work-dir',
                    str(tmp_path / 'work')])
    assert UNSAFE_LOAD_ENV not in os.environ
    # Also when the command fails, and a value set before it is kept.
    monkeypatch.setenv(UNSAFE_LOAD_ENV, 'off')
    with pytest.raises(FileNotFoundError):
        test_tool.main([config, str(tmp_path / 'missing.pth'),
                        '--unsafe-load'])
    assert os.environ[UNSAFE_LOAD_ENV] == 'off'
    # A later load in the same process is safe again.
    victim = tmp_path / 'touched'
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': shell_payload(f'touch {victim}')},
               evil)
    with pytest.raises(RuntimeError, match='it names posix.system'):
        test_tool.main([config, evil, '--work-dir', str(tmp_path / 'work')])
    assert not victim.exists()
