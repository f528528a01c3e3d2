"""A training process killed with SIGKILL resumes from its last checkpoint;
a kill while saving leaves the previous checkpoint usable."""
import copy
import glob
import os
import os.path as osp
import signal
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from cli_tools import load_tool, start_python
from mmcal_test_utils import tiny_runner_cfg, write_image_folder

from mmcal.runtime import load_checkpoint_file

# 12 images in batches of 4: 3 iterations an epoch, so the checkpoints of
# iterations 2, 4, 8, ... fall in the middle of an epoch.
CHECKPOINT_INTERVAL = 2


@pytest.fixture
def long_run_config(tmp_path):
    data = write_image_folder(str(tmp_path / 'data'))
    cfg = tiny_runner_cfg(data, str(tmp_path / 'work'), max_epochs=100)
    cfg['default_hooks']['checkpoint'] = dict(type='CheckpointHook',
                                              interval=CHECKPOINT_INTERVAL,
                                              by_epoch=False)
    cfg['param_scheduler'] = [
        dict(type='ExponentialLR', gamma=0.9, by_epoch=False)
    ]
    path = str(tmp_path / 'tiny_cal.py')
    Config(cfg).dump(path)
    return path


def last_checkpoint(work_dir):
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as file:
            return file.read().strip()
    except FileNotFoundError:
        return ''


class RecordResumedState(Hook):
    """The runner's state when training (re)starts."""

    def before_train(self, runner):
        self.iter, self.epoch = runner.iter, runner.epoch
        self.model = {
            k: v.clone()
            for k, v in runner.model.state_dict().items()
        }
        # Copies: training goes on updating these in place.
        self.optimizer = copy.deepcopy(runner.optim_wrapper.state_dict())
        self.schedulers = copy.deepcopy(
            [s.state_dict() for s in runner.param_schedulers])


def test_sigkilled_training_resumes_with_full_state(long_run_config, tmp_path):
    work = str(tmp_path / 'work')
    process = start_python('tools/train.py', long_run_config, '--work-dir',
                           work, '--no-validate')
    deadline = time.time() + 120
    while not last_checkpoint(work).endswith(('iter_4.pth', 'iter_6.pth')):
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.time() < deadline, 'no checkpoint of iteration 4'
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    saved = load_checkpoint_file(last_checkpoint(work))

    train_tool = load_tool('train')
    cfg = train_tool.build_config(
        train_tool.parse_args([
            long_run_config, '--work-dir', work, '--resume', '--no-validate',
            '--cfg-options',
            f"train_cfg.max_epochs={saved['meta']['epoch'] + 1}"
        ]))
    runner = Runner.from_cfg(cfg)
    resumed = RecordResumedState()
    runner.register_hook(resumed, 'LOWEST')
    runner.train()

    assert (resumed.iter, resumed.epoch) == (saved['meta']['iter'],
                                             saved['meta']['epoch'])
    assert resumed.model.keys() == saved['state_dict'].keys()
    for key, value in saved['state_dict'].items():
        assert torch.equal(resumed.model[key], value), key
    assert saved['state_dict']['head.feature_centers'].abs().sum() > 0
    momentum = saved['optimizer']['state']
    assert len(momentum) > 0
    for index, state in momentum.items():
        assert torch.equal(
            resumed.optimizer['state'][index]['momentum_buffer'],
            state['momentum_buffer'])
    assert resumed.optimizer['param_groups'][0]['lr'] == pytest.approx(
        1e-3 * 0.9**saved['meta']['iter'])
    assert resumed.schedulers == saved['param_schedulers']
    # mmengine's epoch loop restarts an interrupted epoch from its start.
    assert runner.iter == saved['meta']['iter'] + 3


# tools/train.py, killed halfway through writing the temporary file whose
# path contains the first argument.
KILL_WHILE_SAVING = '''
import os, runpy, signal, sys
target = sys.argv[1]
real_fdopen = os.fdopen


class KillMidWrite:
    """A file that dies by SIGKILL after writing half of its data."""

    def __init__(self, file):
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, *error):
        self.file.close()

    def write(self, data):
        self.file.write(data[:len(data) // 2])
        self.file.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def fdopen(fd, *args, **kwargs):
    file = real_fdopen(fd, *args, **kwargs)
    if target in os.readlink(f'/proc/self/fd/{fd}'):
        return KillMidWrite(file)
    return file


os.fdopen = fdopen
sys.argv = ['tools/train.py', *sys.argv[2:]]
runpy.run_path('tools/train.py', run_name='__main__')
'''


def test_kill_while_saving_keeps_previous_checkpoint(long_run_config,
                                                     tmp_path):
    work = str(tmp_path / 'work')
    process = start_python('-c', KILL_WHILE_SAVING, '/.iter_4.pth.',
                           long_run_config, '--work-dir', work,
                           '--no-validate')
    output = process.communicate(timeout=120)[0]
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    # Killed halfway through writing iteration 4's temporary file.
    partial = glob.glob(osp.join(work, '.iter_4.pth.*.tmp'))
    assert len(partial) == 1 and os.path.getsize(partial[0]) > 0
    assert not osp.exists(osp.join(work, 'iter_4.pth'))
    assert last_checkpoint(work) == osp.join(work, 'iter_2.pth')
    previous = load_checkpoint_file(osp.join(work, 'iter_2.pth'))
    assert previous['meta']['iter'] == 2
    assert 'head.feature_centers' in previous['state_dict']


def test_kill_while_saving_keeps_the_checkpoint_it_rotates_out(tmp_path):
    # mmengine deletes epoch_1.pth (the one checkpoint kept) before it
    # writes epoch_2.pth: a kill during that write left none.
    data = write_image_folder(str(tmp_path / 'data'))
    work = str(tmp_path / 'work')
    cfg = tiny_runner_cfg(data, work, max_epochs=3)
    cfg['default_hooks']['checkpoint'].update(max_keep_ckpts=1)
    config = str(tmp_path / 'tiny_cal.py')
    Config(cfg).dump(config)
    process = start_python('-c', KILL_WHILE_SAVING, '/.epoch_2.pth.',
                           config, '--work-dir', work, '--no-validate')
    output = process.communicate(timeout=120)[0]
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    previous = osp.join(work, 'epoch_1.pth')
    assert last_checkpoint(work) == previous
    assert load_checkpoint_file(previous)['meta']['epoch'] == 1

    resume = start_python('tools/train.py', config, '--work-dir', work,
                          '--resume', '--no-validate', '--cfg-options',
                          'log_level=INFO')
    output = resume.communicate(timeout=120)[0]
    assert resume.returncode == 0, output[-3000:]
    assert 'resumed epoch: 1, iter: 3' in output
    # Rotation goes on after the resume: only the newest is kept.
    assert glob.glob(osp.join(work, '*.pth')) == [
        osp.join(work, 'epoch_3.pth')
    ]
    assert load_checkpoint_file(osp.join(work, 'epoch_3.pth'))['meta'][
        'iter'] == 9
