"""FiniteLossOptimWrapper: a NaN or infinite loss changes nothing."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import OPTIM_WRAPPERS


def build(accumulative_counts=1):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    wrapper = OPTIM_WRAPPERS.build(
        dict(type='FiniteLossOptimWrapper',
             optimizer=torch.optim.SGD(model.parameters(),
                                       lr=0.1,
                                       momentum=0.9,
                                       weight_decay=0.1),
             accumulative_counts=accumulative_counts))
    return model, wrapper


def snapshot(model, wrapper):
    return ([p.detach().clone() for p in model.parameters()], [
        s['momentum_buffer'].clone() for s in wrapper.optimizer.state.values()
    ])


def assert_same(first, second):
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize('fault', [float('nan'), float('inf')])
def test_non_finite_loss_leaves_parameters_and_momentum(fault):
    model, wrapper = build()
    inputs = torch.ones(4, 3)
    wrapper.update_params(model(inputs).sum())  # creates momentum buffers
    before = snapshot(model, wrapper)
    wrapper.update_params(model(inputs).sum() * fault)
    assert wrapper.last_step_skipped and wrapper.num_skipped == 1
    assert_same(before, snapshot(model, wrapper))
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    # The next finite loss updates again, as plain SGD would from `before`.
    wrapper.update_params(model(inputs).sum())
    assert not wrapper.last_step_skipped
    weight, bias = before[0]
    grad_bias = torch.full((2, ), 4.)
    momentum = 0.9 * before[1][1] + grad_bias + 0.1 * bias
    assert torch.allclose(model.bias, bias - 0.1 * momentum)


def test_skipped_batch_in_accumulation_window_drops_the_window():
    model, wrapper = build(accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    inputs = torch.ones(4, 3)
    before = [p.detach().clone() for p in model.parameters()]
    wrapper.update_params(model(inputs).sum())  # accumulates, no step
    wrapper.update_params(model(inputs).sum() * float('nan'))  # boundary
    assert wrapper.num_skipped == 1
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
        assert p.grad is None or not p.grad.any()
    wrapper.update_params(model(inputs).sum())
    wrapper.update_params(model(inputs).sum())
    assert not torch.equal(model.bias, before[1])
