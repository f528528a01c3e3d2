"""NonFiniteLossHook: a NaN loss stops training (no checkpoint after it) or,
with FiniteLossOptimWrapper, skips that update; NaN validation scores stop
it too."""
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmcal_test_utils import (ROOT, mmengine_warnings, tiny_runner_cfg,
                              write_image_folder)

FAULTY_ITER = 2  # 0-based: the third iteration, batch 1 of epoch 2


def runner_with_fault(tmp_path, action, wrapper='OptimWrapper'):
    data = write_image_folder(str(tmp_path / 'data'))
    cfg = tiny_runner_cfg(data, str(tmp_path / 'work'), max_epochs=2)
    cfg['val_dataloader'] = cfg['val_cfg'] = cfg['val_evaluator'] = None
    cfg['train_dataloader']['batch_size'] = 6  # 2 iterations an epoch
    cfg['optim_wrapper']['type'] = wrapper
    cfg['default_hooks']['checkpoint'] = dict(type='CheckpointHook',
                                              interval=1,
                                              by_epoch=False)
    cfg['custom_hooks'] = [dict(type='NonFiniteLossHook', action=action)]
    cfg['experiment_name'] = f'non_finite_{action}_{wrapper}'
    runner = Runner.from_cfg(Config(cfg))
    head = runner.model.head
    head_loss = head.loss

    def loss_with_fault(*args, **kwargs):
        losses = head_loss(*args, **kwargs)
        if runner.iter == FAULTY_ITER:
            losses['loss_effect'] = losses['loss_effect'] * float('nan')
        return losses

    head.loss = loss_with_fault
    return runner


def test_non_finite_loss_stops_with_iteration_and_terms(tmp_path):
    runner = runner_with_fault(tmp_path, 'raise')
    with pytest.raises(FloatingPointError) as e:
        runner.train()
    message = str(e.value)
    assert message.startswith('Non-finite loss at iteration 3 (epoch 2, '
                              'batch 1 of the epoch): loss=nan, '
                              'loss_effect=nan (all terms')
    faulty_part = message.split(' (all terms')[0]
    assert 'loss_raw' not in faulty_part and 'loss_center' not in faulty_part
    # No checkpoint of the faulty state; the message names the last one.
    work = str(tmp_path / 'work')
    saved = sorted(f for f in os.listdir(work) if f.endswith('.pth'))
    assert saved == ['iter_1.pth', 'iter_2.pth']
    assert osp.join(work, 'iter_2.pth') in message


class RecordParameters(Hook):
    """Parameters and momentum around the faulty iteration."""

    def __init__(self):
        self.states = {}

    def _state(self, runner):
        optimizer = runner.optim_wrapper.optimizer
        return ({
            k: v.clone()
            for k, v in runner.model.state_dict().items()
        }, [s['momentum_buffer'].clone() for s in optimizer.state.values()])

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == FAULTY_ITER:
            self.states['before'] = self._state(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if runner.iter in (FAULTY_ITER, FAULTY_ITER + 1):
            self.states[runner.iter] = self._state(runner)


def test_skip_mode_leaves_parameters_and_trains_on(tmp_path):
    runner = runner_with_fault(tmp_path, 'skip', 'FiniteLossOptimWrapper')
    recorder = RecordParameters()
    runner.register_hook(recorder, 'LOWEST')
    with mmengine_warnings() as messages:
        runner.train()
    assert runner.iter == 4
    assert runner.optim_wrapper.num_skipped == 1
    (weights, momentum), (weights_after,
                          momentum_after) = (recorder.states['before'],
                                             recorder.states[FAULTY_ITER])
    trainable = dict(runner.model.named_parameters())
    for key in trainable:
        assert torch.equal(weights[key], weights_after[key]), key
    for a, b in zip(momentum, momentum_after):
        assert torch.equal(a, b)
    # The next iteration updates again.
    weights_next = recorder.states[FAULTY_ITER + 1][0]
    assert not torch.equal(weights['head.fc.weight'],
                           weights_next['head.fc.weight'])
    skipped = [m for m in messages if m.startswith('Skipped the update')]
    assert len(skipped) == 1
    assert 'iteration 3' in skipped[0] and 'loss_effect=nan' in skipped[0]
    assert '1 updates skipped so far' in skipped[0]


def test_skip_mode_without_the_wrapper_is_a_config_error(tmp_path):
    runner = runner_with_fault(tmp_path, 'skip')
    with pytest.raises(ValueError, match='FiniteLossOptimWrapper') as e:
        runner.train()
    assert 'builds OptimWrapper' in str(e.value)
    assert runner.iter == 0


def test_unknown_action_is_named():
    from mmpretrain.registry import HOOKS
    with pytest.raises(ValueError, match="'ignore'"):
        HOOKS.build(dict(type='NonFiniteLossHook', action='ignore'))


def test_train_tool_stops_a_run_diverging_with_finite_losses(tmp_path):
    """At lr 1 the tiny model's training losses grow but stay finite
    (training-mode BatchNorm normalises the exploding activations) while
    its eval-mode scores are NaN: the hook, which tools/train.py adds to a
    config without one, stops the run at the first validation."""
    data = write_image_folder(str(tmp_path / 'data'))
    work = str(tmp_path / 'work')
    cfg = tiny_runner_cfg(data, work, max_epochs=3)
    cfg['optim_wrapper']['optimizer']['lr'] = 1.
    cfg['default_hooks']['checkpoint']['save_best'] = 'auto'
    assert 'custom_hooks' not in cfg
    config = str(tmp_path / 'diverging.py')
    Config(cfg).dump(config)
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 1, result.stderr[-3000:]
    assert ('FloatingPointError: Non-finite validation scores after '
            'iteration 3 (epoch 1) for 4 of 4 images (') in result.stderr
    assert 'although the training loss was finite' in result.stderr
    assert f'the latest checkpoint is {osp.join(work, "epoch_1.pth")}' \
        in result.stderr
    scalars, = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as file:
        losses = [json.loads(line)['loss'] for line in file]
    assert len(losses) == 3 and all(map(math.isfinite, losses))
    assert losses[-1] > 100 * losses[0]
    # Stopped before a best checkpoint was chosen from those scores.
    assert sorted(f for f in os.listdir(work) if f.endswith('.pth')) == [
        'epoch_1.pth'
    ]
