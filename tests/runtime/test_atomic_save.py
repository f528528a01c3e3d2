"""Checkpoints are saved through an atomic local backend."""
import os
import os.path as osp

import pytest
from mmengine.fileio import get_file_backend

import mmcal  # noqa: F401


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
