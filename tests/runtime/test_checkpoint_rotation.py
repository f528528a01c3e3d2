"""Checkpoint rotation (``max_keep_ckpts``) deletes the checkpoints it
rotates out only once the new one is saved, through tools/train.py's
Runner set-up."""
import errno
import glob
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import Runner

from mmcal_test_utils import load_tool, tiny_runner_cfg, write_image_folder

from mmcal.runtime import load_checkpoint_file, patches
from mmcal.runtime.checkpoint_rotation import save_checkpoint_then_rotate


class RecordStart(Hook):
    """The epoch training (re)starts at."""

    def before_train(self, runner):
        self.epoch = runner.epoch


def tool_runner(tmp_path, max_epochs, max_keep_ckpts, name, *options):
    """The Runner tools/train.py builds for the tiny model (checkpoints in
    ``tmp_path/work``), with ``options`` on its command line."""
    config = str(tmp_path / 'tiny_cal.py')
    if not osp.exists(config):
        data = write_image_folder(str(tmp_path / 'data'))
        cfg = tiny_runner_cfg(data, str(tmp_path / 'work'), max_epochs)
        cfg['default_hooks']['checkpoint'].update(
            max_keep_ckpts=max_keep_ckpts)
        Config(cfg).dump(config)
    train_tool = load_tool('train.py')
    cfg = train_tool.build_config(
        train_tool.parse_args([config, '--no-validate', *options]))
    # Two runners started within a second would share a message hub.
    cfg.experiment_name = name
    return Runner.from_cfg(cfg)


def checkpoint_hook(runner) -> CheckpointHook:
    hook, = [h for h in runner.hooks if isinstance(h, CheckpointHook)]
    return hook


def saved(work):
    return sorted(osp.basename(path)
                  for path in glob.glob(osp.join(work, '*.pth')))


def last_checkpoint(work):
    with open(osp.join(work, 'last_checkpoint')) as file:
        return file.read()


class FullDisk:
    """A file on a full disk: half of the data goes in, then ENOSPC."""

    def __init__(self, file):
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, *error):
        self.file.close()

    def write(self, data):
        self.file.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize('max_keep_ckpts, full_at', [(1, 2), (2, 3)])
def test_full_disk_keeps_the_kept_checkpoints_and_their_ids(
        tmp_path, monkeypatch, max_keep_ckpts, full_at):
    work = str(tmp_path / 'work')
    runner = tool_runner(tmp_path, full_at + 1, max_keep_ckpts, 'full')
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        file = real_fdopen(fd, *args, **kwargs)
        if f'/.epoch_{full_at}.pth.' in os.readlink(f'/proc/self/fd/{fd}'):
            return FullDisk(file)
        return file

    monkeypatch.setattr(os, 'fdopen', fdopen)
    with pytest.raises(OSError) as error:
        runner.train()
    monkeypatch.undo()
    assert error.value.errno == errno.ENOSPC

    kept = list(range(full_at - max_keep_ckpts, full_at))
    assert saved(work) == [f'epoch_{step}.pth' for step in kept]
    assert not glob.glob(osp.join(work, '.*.tmp'))
    newest = osp.join(work, f'epoch_{kept[-1]}.pth')
    assert last_checkpoint(work) == newest
    hook = checkpoint_hook(runner)
    assert list(hook.keep_ckpt_ids) == kept
    assert runner.message_hub.get_info('keep_ckpt_ids') == kept
    assert hook.last_ckpt == runner.message_hub.get_info('last_ckpt') \
        == newest

    resumed = tool_runner(tmp_path, full_at + 1, max_keep_ckpts, 'resumed',
                          '--resume')
    start = RecordStart()
    resumed.register_hook(start)
    resumed.train()
    assert start.epoch == kept[-1]
    assert saved(work) == [
        f'epoch_{step}.pth'
        for step in range(full_at + 2 - max_keep_ckpts, full_at + 2)
    ]


def test_rotated_out_checkpoint_left_by_a_kill_goes_at_resume(
        tmp_path, monkeypatch):
    # Killed after epoch_2.pth is in place, before epoch_1.pth is deleted.
    work = str(tmp_path / 'work')
    first = osp.join(work, 'epoch_1.pth')
    runner = tool_runner(tmp_path, 3, 1, 'killed')
    real_remove = os.remove

    def remove(path):
        if path == first:
            raise SystemExit('killed')
        real_remove(path)

    monkeypatch.setattr(os, 'remove', remove)
    with pytest.raises(SystemExit):
        runner.train()
    monkeypatch.undo()
    assert saved(work) == ['epoch_1.pth', 'epoch_2.pth']
    assert last_checkpoint(work) == osp.join(work, 'epoch_2.pth')
    # The ids saved with epoch 2 name the file that still exists.
    state = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))
    assert state['message_hub']['runtime_info']['keep_ckpt_ids'] == [1, 2]

    resumed = tool_runner(tmp_path, 3, 1, 'resumed', '--resume')
    start = RecordStart()
    resumed.register_hook(start)
    resumed.train()
    assert start.epoch == 2
    assert saved(work) == ['epoch_3.pth']


def test_import_puts_the_rotation_in_place():
    assert CheckpointHook._save_checkpoint_with_step is \
        save_checkpoint_then_rotate


def test_unexpected_rotation_is_named_and_replaced(monkeypatch):

    def other_save(self, runner, step, meta):
        pass

    monkeypatch.setattr(CheckpointHook, '_save_checkpoint_with_step',
                        other_save)
    with pytest.warns(patches.PatchWarning, match='other_save'):
        patches.patch_checkpoint_rotation()
    assert CheckpointHook._save_checkpoint_with_step is \
        save_checkpoint_then_rotate
