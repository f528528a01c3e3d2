"""Optimizer state from a checkpoint, checked against the parameters.

``torch.optim.Optimizer.load_state_dict`` checks only the number of
parameters per group, and casts state tensors to each parameter's dtype
and device: it keeps their shapes and strides. The fused CPU kernels of
SGD and AdamW (the recipes' ``fused=True``) then write a whole parameter's
worth of elements into each state tensor, past the storage of one that is
smaller or a stride-0 view. So state is checked, per parameter, before it
is loaded: every state tensor a plain dense view, of its parameter's shape
where the optimizer keeps one value per element.
"""
from itertools import chain

import torch

from .tensor_views import is_dense, view_reason

# State kept as one number per parameter, whatever its shape (step counts,
# ASGD's eta and mu, NAdam's mu_product).
SCALAR_STATE = frozenset({'step', 'eta', 'mu', 'mu_product'})
# Optimizers whose state is factored or flattened rather than kept per
# element (none has a fused kernel); only their views are checked.
FACTORED_STATE_OPTIMIZERS = frozenset({'Adafactor', 'LBFGS'})


def _shape(tensor) -> tuple:
    return tuple(tensor.shape)


def state_tensor_reason(optimizer_type: str, key: str,
                        value: torch.Tensor, param: torch.Tensor) -> str:
    """Why state tensor ``key`` of ``param`` cannot be loaded, or ''."""
    reason = view_reason(value) or (
        '' if is_dense(value) else 'it is not dense')
    if reason:
        return reason
    if key in SCALAR_STATE:
        return '' if value.numel() == 1 else (
            f'it has shape {_shape(value)}, not one value')
    if optimizer_type not in FACTORED_STATE_OPTIMIZERS and \
            value.shape != param.shape:
        return (f'it has shape {_shape(value)} but its parameter has '
                f'shape {_shape(param)}')
    return ''


def check_optimizer_state(optimizer: torch.optim.Optimizer,
                          state_dict) -> None:
    """Refuse ``state_dict`` unless it fits ``optimizer``'s parameters.

    Usable as an optimizer's load_state_dict pre-hook.

    Raises:
        ValueError: naming the state entry (``state[<id>][<key>]``) and
            what does not fit.
    """
    where = f'optimizer state for {type(optimizer).__name__}'
    if not (isinstance(state_dict, dict)
            and isinstance(state_dict.get('state'), dict)
            and isinstance(state_dict.get('param_groups'), list) and all(
                isinstance(group, dict)
                and isinstance(group.get('params'), list)
                for group in state_dict['param_groups'])):
        raise ValueError(
            f'Cannot load {where}: it is not a dict with a "state" dict and '
            'a "param_groups" list of dicts with "params" lists')
    saved = [group['params'] for group in state_dict['param_groups']]
    current = [group['params'] for group in optimizer.param_groups]
    if [len(ids) for ids in saved] != [len(ps) for ps in current]:
        raise ValueError(
            f'Cannot load {where}: its groups hold '
            f'{[len(ids) for ids in saved]} parameters, the optimizer '
            f'{[len(ps) for ps in current]}')
    params = dict(zip(chain.from_iterable(saved),
                      chain.from_iterable(current)))
    for param_id, state in state_dict['state'].items():
        if param_id not in params:
            continue  # torch keeps it aside, unused
        if not isinstance(state, dict):
            raise ValueError(f'Cannot load {where}: state[{param_id!r}] is '
                             f'a {type(state).__name__}, not a dict')
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                continue
            reason = state_tensor_reason(
                type(optimizer).__name__, key, value, params[param_id])
            if reason:
                raise ValueError(f'Cannot load {where}: '
                                 f'state[{param_id!r}][{key!r}]: {reason}')
