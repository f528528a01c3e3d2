"""Where ``--resume`` without a path continues from."""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmcal_test_utils import (load_tool, mmengine_warnings, shell_payload,
                              tiny_runner_cfg, write_image_folder)

from mmcal.runtime import find_resume_checkpoint, load_checkpoint_file


def training_state(epoch=1, **changes):
    """What a Runner checkpoint holds, in miniature."""
    state = dict(
        meta=dict(epoch=epoch, iter=3 * epoch),
        state_dict=dict(weight=torch.zeros(2)),
        message_hub=dict(log_scalars={}, runtime_info={}),
        optimizer=dict(state={}, param_groups=[]),
        param_schedulers=[dict(last_step=3 * epoch)])
    state.update(changes)
    return {key: value for key, value in state.items() if value is not None}


def save(path, state, mtime):
    torch.save(state, str(path))
    os.utime(path, (mtime, mtime))
    return str(path)


def test_resume_checkpoint_follows_last_checkpoint(tmp_path):
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'epoch_1.pth')


@pytest.mark.parametrize('pointer', ['', 'gone.pth', None])
def test_resume_checkpoint_survives_a_broken_pointer(tmp_path, pointer):
    save(tmp_path / 'iter_2.pth', training_state(1), 1)
    newer = save(tmp_path / 'iter_4.pth', training_state(2), 2)
    (tmp_path / '.iter_6.pth.abc.tmp').write_bytes(b'half')
    if pointer is not None:
        (tmp_path / 'last_checkpoint').write_text(
            str(tmp_path / pointer) if pointer else '')
    assert find_resume_checkpoint(str(tmp_path)) == newer


def test_resume_checkpoint_of_a_new_work_dir_is_none(tmp_path):
    assert find_resume_checkpoint(str(tmp_path / 'fresh')) is None


def test_fallback_passes_over_weights_only_and_broken_files(tmp_path):
    # mmengine's best_*.pth: weights and meta, no optimizer or schedulers.
    epoch_2 = save(tmp_path / 'epoch_2.pth', training_state(2), 2)
    save(tmp_path / 'best_accuracy_top1_epoch_3.pth',
         training_state(3, optimizer=None, param_schedulers=None), 4)
    save(tmp_path / 'epoch_3.pth', training_state(3, meta=dict(epoch=3)), 3)
    (tmp_path / 'epoch_9.pth').symlink_to(tmp_path / 'moved' / 'epoch_9.pth')
    with mmengine_warnings() as warnings:
        assert find_resume_checkpoint(str(tmp_path)) == epoch_2
    warning, = warnings
    assert 'last_checkpoint is missing' in warning
    assert f'resuming from {epoch_2}' in warning
    assert 'best_accuracy_top1_epoch_3.pth: no training state to resume: ' \
        'it lacks optimizer, param_schedulers' in warning
    assert 'epoch_3.pth: no training state to resume: it lacks meta.iter' \
        in warning
    assert f"epoch_9.pth: a symlink to {tmp_path / 'moved' / 'epoch_9.pth'}" \
        ', which does not exist' in warning


def test_schedulers_are_needed_only_by_a_run_that_has_them(tmp_path):
    path = save(tmp_path / 'epoch_1.pth',
                training_state(1, param_schedulers=None), 1)
    assert find_resume_checkpoint(str(tmp_path), with_schedulers=False) \
        == path
    with pytest.raises(RuntimeError, match='lacks param_schedulers'):
        find_resume_checkpoint(str(tmp_path))


def test_no_resumable_checkpoint_stops_naming_each_file(tmp_path):
    best = save(tmp_path / 'best_accuracy_top1_epoch_3.pth',
                training_state(3, optimizer=None), 2)
    (tmp_path / 'epoch_4.pth').symlink_to(tmp_path / 'gone.pth')
    (tmp_path / 'epoch_5.pth').write_bytes(b'PK\x03\x04 cut short')
    os.mkfifo(tmp_path / 'epoch_6.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_4.pth'))
    with pytest.raises(RuntimeError) as error:
        find_resume_checkpoint(str(tmp_path))
    message = str(error.value)
    assert f'no checkpoint to resume in {tmp_path}' in message
    assert f"last_checkpoint names {tmp_path / 'epoch_4.pth'}, which is " \
        'not a file' in message
    assert f'{best}: no training state to resume: it lacks optimizer' \
        in message
    assert f"epoch_4.pth: a symlink to {tmp_path / 'gone.pth'}" in message
    assert f"Cannot read checkpoint {tmp_path / 'epoch_5.pth'}" in message
    assert 'epoch_6.pth: not a regular file' in message
    assert '--resume PATH' in message


def test_a_crafted_candidate_is_refused_not_run(tmp_path):
    marker = tmp_path / 'ran'
    older = save(tmp_path / 'epoch_1.pth', training_state(1), 1)
    save(tmp_path / 'epoch_2.pth',
         training_state(2, optimizer=shell_payload(f'touch {marker}')), 2)
    with mmengine_warnings() as warnings:
        assert find_resume_checkpoint(str(tmp_path)) == older
    assert not marker.exists()
    assert 'Refused to load checkpoint' in warnings[0]
    assert 'posix.system' in warnings[0]


def bytes_read() -> int:
    """What this process has read with read() calls so far."""
    with open('/proc/self/io') as io:
        return int(next(line for line in io if line.startswith('rchar'))
                   .split()[1])


def test_candidates_are_inspected_without_reading_their_tensors(tmp_path):
    tensor_bytes = 32 * 2**20
    state = training_state(1)
    state['state_dict']['weight'] = torch.zeros(tensor_bytes // 4)
    path = save(tmp_path / 'epoch_1.pth', state, 1)
    before = bytes_read()
    assert find_resume_checkpoint(str(tmp_path)) == path
    assert bytes_read() - before < tensor_bytes // 8


class RecordResumedState(Hook):
    """The runner's state when training (re)starts."""

    def before_train(self, runner):
        self.epoch = runner.epoch
        self.optimizer = copy.deepcopy(runner.optim_wrapper.state_dict())
        self.schedulers = [s.state_dict() for s in runner.param_schedulers]


def test_train_resume_skips_the_newer_best_checkpoint(tmp_path):
    """tools/train.py --resume after last_checkpoint went missing: the
    epoch checkpoint is resumed, not the newer best_*.pth (which would
    restart the warm-up with no momentum)."""
    data = write_image_folder(str(tmp_path / 'data'))
    work = str(tmp_path / 'work')
    cfg = tiny_runner_cfg(data, work, max_epochs=1)
    cfg['default_hooks']['checkpoint'].update(save_best='auto')
    cfg['param_scheduler'] = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=6)
    ]
    config = str(tmp_path / 'tiny_cal.py')
    Config(cfg).dump(config)
    train_tool = load_tool('train.py')

    def tool_runner(name, *options):
        built = train_tool.build_config(train_tool.parse_args(
            [config, '--work-dir', work, *options]))
        built.experiment_name = name  # one message hub each
        return Runner.from_cfg(built)

    tool_runner('first').train()
    best, = [name for name in os.listdir(work) if name.startswith('best_')]
    # best_*.pth is the newest when the run stopped before re-saving the
    # epoch's checkpoint after it, or when its epoch had no checkpoint.
    newest = osp.getmtime(osp.join(work, 'epoch_1.pth')) + 1
    os.utime(osp.join(work, best), (newest, newest))
    os.remove(osp.join(work, 'last_checkpoint'))

    resumed = tool_runner('resumed', '--resume', '--cfg-options',
                          'train_cfg.max_epochs=2')
    assert resumed.cfg.load_from == osp.join(work, 'epoch_1.pth')
    record = RecordResumedState()
    resumed.register_hook(record)
    resumed.train()
    saved = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    assert record.epoch == 1
    assert record.schedulers == saved['param_schedulers']
    # The warm-up goes on from iteration 3 (a fresh one starts at 0).
    assert record.schedulers[0]['last_step'] == 3
    assert len(saved['optimizer']['state']) > 0
    for index, state in saved['optimizer']['state'].items():
        assert torch.equal(
            record.optimizer['state'][index]['momentum_buffer'],
            state['momentum_buffer'])
