"""Checkpoints and prediction files are written atomically, with the
permissions the umask gives."""
import contextlib
import os
import os.path as osp
import stat

import pytest
from mmengine.config import Config
from mmengine.fileio import get_file_backend
from mmengine.runner import Runner

from mmcal_test_utils import load_tool, tiny_runner_cfg, write_image_folder

from mmcal.runtime import write_atomically


def test_local_backend_put_is_atomic(tmp_path, monkeypatch):
    target = str(tmp_path / 'ckpt' / 'latest.pth')
    backend = get_file_backend(target)
    backend.put(b'first', target)

    def fail_midway(fd):
        raise OSError('disk full')

    # A write that fails leaves the previous file and no temporary file.
    with monkeypatch.context() as patch:
        patch.setattr(os, 'fsync', fail_midway)
        with pytest.raises(OSError, match='disk full'):
            backend.put(b'second', target)
    with open(target, 'rb') as file:
        assert file.read() == b'first'
    assert os.listdir(osp.dirname(target)) == ['latest.pth']
    backend.put(b'second', target)
    with open(target, 'rb') as file:
        assert file.read() == b'second'


@contextlib.contextmanager
def umask(mask):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize('mask', [0o022, 0o027, 0o077, 0o002])
def test_new_files_get_the_mode_open_gives_and_old_ones_keep_theirs(
        tmp_path, mask):
    with umask(mask):
        with open(tmp_path / 'by_open.txt', 'w'):
            pass
        write_atomically('predictions', tmp_path / 'new.txt')
        write_atomically(b'weights', tmp_path / 'new.pth')
    assert mode(tmp_path / 'new.txt') == 0o666 & ~mask
    assert mode(tmp_path / 'new.txt') == mode(tmp_path / 'by_open.txt')
    assert mode(tmp_path / 'new.pth') == 0o666 & ~mask
    # A file replaced keeps its permissions, as one rewritten in place by
    # open(path, 'w') does, whatever the umask.
    os.chmod(tmp_path / 'new.txt', 0o604)
    with umask(0o077):
        write_atomically('again', tmp_path / 'new.txt')
    assert mode(tmp_path / 'new.txt') == 0o604
    assert (tmp_path / 'new.txt').read_text() == 'again'
    assert sorted(os.listdir(tmp_path)) == ['by_open.txt', 'new.pth',
                                            'new.txt']


def test_training_checkpoints_and_predictions_follow_the_umask(tmp_path):
    # A real training run saves through the atomic backend: its checkpoint
    # gets the mode mmengine's own open(path, 'wb') would give (0640 under
    # umask 027, where mkstemp gave 0600), and so does answer.txt.
    data_root = write_image_folder(str(tmp_path / 'data'))
    work_dir = tmp_path / 'work'
    cfg = Config(tiny_runner_cfg(data_root, str(work_dir)))
    config = str(tmp_path / 'tiny_cal.py')
    cfg.dump(config)
    answer = tmp_path / 'answer.txt'
    with umask(0o027):
        Runner.from_cfg(cfg).train()
        load_tool('predict.py').main([
            config, str(work_dir / 'epoch_1.pth'), data_root, '--out',
            str(answer)
        ])
    assert mode(work_dir / 'epoch_1.pth') == 0o640
    assert mode(work_dir / 'last_checkpoint') == 0o640  # mmengine's open
    assert mode(answer) == 0o640
    assert len(answer.read_text().splitlines()) == 12
