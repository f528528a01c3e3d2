"""Optimizer state is checked against the parameters before it is loaded.

torch's fused CPU SGD and AdamW write a parameter's worth of elements into
each state tensor: a smaller or stride-0 one from a checkpoint makes them
write past its storage (exit 139 on resume without the check).
"""
import copy
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from mmcal.runtime.optimizer_state import check_optimizer_state
from mmcal_test_utils import ROOT, tiny_runner_cfg, write_image_folder

OPTIMIZERS = {
    'SGD': lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    'fused SGD': lambda params: torch.optim.SGD(
        params, lr=0.1, momentum=0.9, fused=True),
    'fused AdamW': lambda params: torch.optim.AdamW(params, fused=True),
    'Adam amsgrad': lambda params: torch.optim.Adam(params, amsgrad=True),
    'Adagrad': torch.optim.Adagrad,
    'ASGD': torch.optim.ASGD,
    'NAdam': torch.optim.NAdam,
    'Adafactor': torch.optim.Adafactor,
}


def stepped(name):
    """An optimizer of ``name`` after two steps on a conv weight (channels
    last) and a bias, and its parameters."""
    torch.manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(4, 3, 3, 3).to(
            memory_format=torch.channels_last)),
        torch.nn.Parameter(torch.randn(4))
    ]
    optimizer = OPTIMIZERS[name](params)
    for _ in range(2):
        for param in params:
            param.grad = torch.randn_like(param)
        optimizer.step()
    return optimizer, params


@pytest.mark.parametrize('name', OPTIMIZERS)
def test_honest_state_loads(name):
    optimizer, _ = stepped(name)
    state = copy.deepcopy(optimizer.state_dict())
    check_optimizer_state(optimizer, state)
    fresh, _ = stepped(name)
    OptimWrapper(fresh).load_state_dict(state)
    assert torch.equal(
        *[next(iter(opt.state_dict()['state'][0].values()))
          for opt in (fresh, optimizer)])


def replaced(state_dict, key, value):
    state_dict = copy.deepcopy(state_dict)
    state_dict['state'][0][key] = value
    return state_dict


@pytest.mark.parametrize('name, key, value, reason', [
    ('fused SGD', 'momentum_buffer', torch.zeros(1),
     'it has shape (1,) but its parameter has shape (4, 3, 3, 3)'),
    ('fused SGD', 'momentum_buffer', torch.zeros(1).view(1, 1, 1, 1).expand(
        4, 3, 3, 3), 'sizes (4, 3, 3, 3) with strides (0, 0, 0, 0) make '
     'elements share memory'),
    ('fused SGD', 'momentum_buffer', torch.zeros(4, 3, 3, 6)[..., ::2],
     'it is not dense'),
    ('fused AdamW', 'exp_avg_sq', torch.zeros(()),
     'it has shape () but its parameter has shape (4, 3, 3, 3)'),
    ('fused AdamW', 'step', torch.zeros(0), 'it has shape (0,), not one '
     'value'),
])
def test_state_that_does_not_fit_is_named(name, key, value, reason):
    optimizer, _ = stepped(name)
    state_dict = replaced(optimizer.state_dict(), key, value)
    with pytest.raises(ValueError) as error:
        # The hook the patch gives every OptimWrapper's optimizer.
        OptimWrapper(optimizer).load_state_dict(state_dict)
    assert str(error.value) == (
        f'Cannot load optimizer state for {type(optimizer).__name__}: '
        f"state[0]['{key}']: {reason}")


def test_malformed_state_dict_is_named():
    optimizer, _ = stepped('SGD')
    for state_dict in ({'state': [], 'param_groups': []},
                       {'state': {}, 'param_groups': [{'params': 0}]}):
        with pytest.raises(ValueError, match='is not a dict with a "state"'):
            check_optimizer_state(optimizer, state_dict)
    state_dict = optimizer.state_dict()
    state_dict['param_groups'][0]['params'] = [0]
    with pytest.raises(ValueError, match=r'groups hold \[1\] parameters, '
                       r'the optimizer \[2\]'):
        check_optimizer_state(optimizer, state_dict)


@pytest.fixture(scope='module')
def fused_run(tmp_path_factory):
    """A tiny CAL run of one epoch with the recipes' fused SGD."""
    root = tmp_path_factory.mktemp('fused')
    cfg = tiny_runner_cfg(write_image_folder(str(root / 'data')),
                          str(root / 'work'))
    cfg['optim_wrapper']['optimizer']['fused'] = True
    Runner.from_cfg(Config(copy.deepcopy(cfg))).train()
    config = str(root / 'tiny.py')
    Config(cfg).dump(config)
    return config, cfg, str(root / 'work' / 'epoch_1.pth')


def test_honest_runner_checkpoint_resumes(fused_run, tmp_path):
    _, cfg, checkpoint = fused_run
    cfg = copy.deepcopy(cfg)
    cfg.update(work_dir=str(tmp_path), resume=True, load_from=checkpoint)
    cfg['train_cfg']['max_epochs'] = 2
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    assert runner.epoch == 2
    momentum = runner.optim_wrapper.optimizer.state_dict()['state']
    assert momentum and all('momentum_buffer' in s for s in momentum.values())


@pytest.mark.parametrize('craft', ['smaller', 'stride 0'])
def test_resume_refuses_momentum_that_does_not_fit(fused_run, tmp_path,
                                                   craft):
    config, _, checkpoint = fused_run
    crafted = torch.load(checkpoint, weights_only=False)
    for state in crafted['optimizer']['state'].values():
        buffer = state['momentum_buffer']
        state['momentum_buffer'] = torch.zeros(1) if craft == 'smaller' else \
            torch.zeros(1).view([1] * buffer.dim()).expand(buffer.shape)
    path = str(tmp_path / 'crafted.pth')
    torch.save(crafted, path)
    done = subprocess.run([
        sys.executable, 'tools/train.py', config, '--resume', path,
        '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        'train_cfg.max_epochs=2'
    ], cwd=ROOT, capture_output=True, text=True, timeout=300)
    # 1: the error; 139 (or a negative code) would be the fused kernel's
    # write past the storage.
    assert done.returncode == 1, done.stderr[-3000:]
    assert {
        'smaller': "Cannot load optimizer state for SGD: state[0]"
        "['momentum_buffer']: it has shape (1,) but its parameter has shape "
        '(16, 3, 7, 7)',
        'stride 0': f"Refused to load checkpoint {path}: Tensor ['optimizer']"
        "['state'][0]['momentum_buffer']: sizes (16, 3, 7, 7) with strides "
        '(0, 0, 0, 0) make elements share memory'
    }[craft] in done.stderr
