import math

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import PARAM_SCHEDULERS

import mmcal  # noqa: F401


def build(epoch_length=None, **cfg):
    wrapper = OptimWrapper(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    default_args = dict(optimizer=wrapper)
    if epoch_length is not None:
        default_args['epoch_length'] = epoch_length
    scheduler = PARAM_SCHEDULERS.build(
        dict(type='ContinuousExponentialLR', gamma=0.5, **cfg),
        default_args=default_args)
    return scheduler, wrapper


def lrs(scheduler, wrapper, steps):
    values = []
    for _ in range(steps):
        values.append(wrapper.get_lr()['lr'][0])
        scheduler.step()
    return values


def test_converted_to_iterations_keeps_gamma_per_epoch():
    scheduler, wrapper = build(
        epoch_length=4, by_epoch=True, convert_to_iter_based=True)
    assert not scheduler.by_epoch
    for step, lr in enumerate(lrs(scheduler, wrapper, 12)):
        assert math.isclose(lr, 0.1 * 0.5**(step / 4), rel_tol=1e-9), step


def test_epoch_based_decays_once_per_epoch():
    scheduler, wrapper = build(by_epoch=True)
    assert lrs(scheduler, wrapper, 3) == pytest.approx([0.1, 0.05, 0.025])


def test_conversion_needs_an_epoch_length():
    with pytest.raises(ValueError, match='epoch_length'):
        build(epoch_length=0, by_epoch=True, convert_to_iter_based=True)
