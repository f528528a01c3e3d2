import math

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import PARAM_SCHEDULERS

import mmcal  # noqa: F401


def build(lr=0.1, **cfg):
    wrapper = OptimWrapper(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr))
    scheduler = PARAM_SCHEDULERS.build(
        dict(type='LinearWarmUpCosineLR', **cfg),
        default_args=dict(optimizer=wrapper))
    return scheduler, wrapper


def lrs(scheduler, wrapper, steps):
    values = []
    for _ in range(steps):
        values.append(wrapper.get_lr()['lr'][0])
        scheduler.step()
    return values


def test_epochs_warm_up_then_anneal_to_the_end():
    scheduler, wrapper = build(warmup=2, start_factor=0.2, end=6)
    assert scheduler.by_epoch
    assert lrs(scheduler, wrapper, 6) == pytest.approx([
        0.02, 0.06, 0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05,
        0.1 * (1 + math.cos(3 * math.pi / 4)) / 2
    ])


def test_warm_up_longer_than_half_the_run_takes_half_of_it():
    scheduler, wrapper = build(warmup=3, end=4)
    assert lrs(scheduler, wrapper, 4) == pytest.approx(
        [0.01, 0.055, 0.1, 0.05])


def test_converted_to_iterations_warms_up_for_the_epochs():
    wrapper = OptimWrapper(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    scheduler = PARAM_SCHEDULERS.build(
        dict(type='LinearWarmUpCosineLR', warmup=0.5, end=2,
             by_epoch=True, convert_to_iter_based=True),
        default_args=dict(optimizer=wrapper, epoch_length=4))
    assert not scheduler.by_epoch and scheduler.end == 8
    values = lrs(scheduler, wrapper, 8)
    assert values[:3] == pytest.approx([0.01, 0.055, 0.1])
    assert values[2:] == sorted(values[2:], reverse=True)


def test_resumed_state_continues_the_curve():
    scheduler, wrapper = build(warmup=2, end=8)
    lrs(scheduler, wrapper, 3)
    state = scheduler.state_dict()
    expected = lrs(scheduler, wrapper, 5)
    resumed, resumed_wrapper = build(warmup=2, end=8)
    resumed.load_state_dict(state)
    # The optimizer's lr comes back with the optimizer's state.
    resumed_wrapper.param_groups[0]['lr'] = expected[0]
    assert lrs(resumed, resumed_wrapper, 5) == pytest.approx(expected)


@pytest.mark.parametrize('cfg, named', [
    (dict(warmup=1), 'train_cfg.max_epochs'),
    (dict(warmup=1, begin=3, end=3), 'begin=3 and end=3'),
    (dict(warmup=-1, end=4), 'warmup >= 0'),
    (dict(warmup=1, start_factor=0, end=4), 'start_factor'),
])
def test_a_schedule_it_cannot_follow_is_named(cfg, named):
    with pytest.raises(ValueError, match='LinearWarmUpCosineLR') as error:
        build(**cfg)
    assert named in str(error.value)


def test_conversion_needs_an_epoch_length():
    wrapper = OptimWrapper(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    with pytest.raises(ValueError, match='epoch_length'):
        PARAM_SCHEDULERS.build(
            dict(type='LinearWarmUpCosineLR', warmup=1, end=2,
                 convert_to_iter_based=True),
            default_args=dict(optimizer=wrapper, epoch_length=0))
