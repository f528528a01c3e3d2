import os

import pytest

from mmcal.runtime import find_resume_checkpoint


def test_resume_checkpoint_follows_last_checkpoint(tmp_path):
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'epoch_1.pth')


@pytest.mark.parametrize('pointer', ['', 'gone.pth', None])
def test_resume_checkpoint_survives_a_broken_pointer(tmp_path, pointer):
    older, newer = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    older.write_bytes(b'x')
    newer.write_bytes(b'x')
    os.utime(older, (1, 1))
    (tmp_path / '.iter_6.pth.abc.tmp').write_bytes(b'half')
    if pointer is not None:
        (tmp_path / 'last_checkpoint').write_text(
            str(tmp_path / pointer) if pointer else '')
    assert find_resume_checkpoint(str(tmp_path)) == str(newer)


def test_resume_checkpoint_of_a_new_work_dir_is_none(tmp_path):
    assert find_resume_checkpoint(str(tmp_path / 'fresh')) is None
