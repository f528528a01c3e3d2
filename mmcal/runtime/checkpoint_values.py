"""What an unpickled checkpoint must hold before mmengine uses it.

Weights-only unpickling rebuilds allowed types with any state: tensor views
the file chooses, ``HistoryBuffer`` attributes filled by BUILD unchecked,
and entries of any type where mmengine expects a dict. mmengine then
trusts them: a stride-0 history of 2^31 values is appended to (16 GiB) at
the first iteration after resuming, a list where ``meta`` should be fails
as an AttributeError deep in the Runner. These checks run on every loaded
checkpoint and raise :class:`CheckpointRefused` naming the entry.
"""
from typing import Iterator, Tuple

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from .checkpoint_limits import (CheckpointRefused, expanded_size_limit,
                                expansion_refusal)
from .tensor_views import view_reason

# Entries mmengine reads from a checkpoint, and the types it needs there.
ENTRY_TYPES = {
    ('state_dict', ): dict,
    ('meta', ): dict,
    ('meta', 'epoch'): int,
    ('meta', 'iter'): int,
    ('meta', 'config'): str,
    ('meta', 'dataset_meta'): dict,
    ('message_hub', ): dict,
    ('message_hub', 'log_scalars'): dict,
    ('message_hub', 'runtime_info'): dict,
    ('message_hub', 'resumed_keys'): dict,
    ('optimizer', ): dict,
    ('param_schedulers', ): (list, dict),
}
# Mappings whose keys mmengine uses as names (regular expressions on the
# keys of state_dict, string formatting of the others).
NAMED_KEYS = ((), ('state_dict', ), ('meta', ), ('message_hub', ))
# The real-number kinds of numpy dtypes (bool, int, uint, float).
REAL_KINDS = 'biuf'


def _path(keys: tuple) -> str:
    return ''.join(f'[{key!r}]' for key in keys) or 'the checkpoint'


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types, )
    return ' or '.join(
        f'{"an" if kind.__name__[0] in "aeiou" else "a"} {kind.__name__}'
        for kind in types)


def _entry(checkpoint, keys: tuple):
    for key in keys:
        if not isinstance(checkpoint, dict) or key not in checkpoint:
            return None
        checkpoint = checkpoint[key]
    return checkpoint


def check_entry_types(checkpoint) -> None:
    """The checkpoint is a dict and the entries mmengine reads have their
    types; raises :class:`CheckpointRefused` naming the entry."""
    if not isinstance(checkpoint, dict):
        raise CheckpointRefused(
            f'it holds {_type_names(type(checkpoint))}, not a dict of named '
            'entries')
    for keys, expected in ENTRY_TYPES.items():
        value = _entry(checkpoint, keys)
        if value is None:
            continue
        if not isinstance(value, expected) or (expected is int and
                                               isinstance(value, bool)):
            raise CheckpointRefused(
                f'{_path(keys)} is {_type_names(type(value))}, not '
                f'{_type_names(expected)}')
        if expected is int and value < 0:
            raise CheckpointRefused(f'{_path(keys)} is negative ({value})')
    for keys in NAMED_KEYS:
        mapping = _entry(checkpoint, keys) if keys else checkpoint
        bad = [key for key in mapping or () if type(key) is not str]
        if bad:
            raise CheckpointRefused(
                f'{_path(keys)} has key {bad[0]!r:.80} of type '
                f'{type(bad[0]).__name__}, not a name (str)')


def history_buffer_reason(buffer: HistoryBuffer) -> str:
    """Why a ``HistoryBuffer``'s state is not what mmengine writes, or ''.

    mmengine writes ``max_length`` and two one-dimensional arrays of real
    numbers of equal length, at most ``max_length``.
    """
    state = vars(buffer)
    max_length = state.get('max_length')
    if type(max_length) is not int or max_length < 1:
        return f'max_length {max_length!r:.80} is not a positive int'
    lengths = []
    for name in ('_log_history', '_count_history'):
        history = state.get(name)
        if not (type(history) is np.ndarray and history.ndim == 1
                and history.dtype.kind in REAL_KINDS):
            return (f'{name} is {type(history).__name__} '
                    f'{getattr(history, "shape", "")}, not a one-dimensional'
                    ' numpy array of real numbers')
        lengths.append(len(history))
    if lengths[0] != lengths[1] or lengths[0] > max_length:
        return (f'histories of lengths {lengths[0]} and {lengths[1]} do '
                f'not match each other or exceed max_length {max_length}')
    return ''


def _walk(value, keys: tuple = ()) -> Iterator[Tuple[tuple, object]]:
    """(keys, value) of every object the checkpoint holds, once each, depth
    first."""
    seen, pending = set(), [(keys, value)]
    while pending:
        keys, value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        yield keys, value
        if isinstance(value, dict):
            items = [(('<key>', ), key) for key in value] + [
                ((key, ), item) for key, item in value.items()]
        elif isinstance(value, (list, tuple, set)):
            items = [((index, ), item) for index, item in enumerate(value)]
        elif isinstance(value, (HistoryBuffer, torch.Tensor)):
            items = [((name, ), item) for name, item in vars(value).items()]
        else:
            continue
        # Reversed, so that entries come out in order: the first at fault
        # is the one named.
        pending.extend((keys + key, item) for key, item in reversed(items))


def check_values(checkpoint, file_size: int) -> None:
    """Every tensor is a plain view, their bytes together stay within the
    limit for ``file_size``, every ``HistoryBuffer`` has mmengine's state.

    Raises:
        CheckpointRefused: naming the entry at fault.
    """
    tensor_bytes = 0
    for keys, value in _walk(checkpoint):
        reason = ''
        if isinstance(value, torch.Tensor):
            reason = view_reason(value)
            tensor_bytes += value.numel() * value.element_size()
        elif isinstance(value, HistoryBuffer):
            reason = history_buffer_reason(value)
        if reason:
            kind = type(value).__name__
            raise CheckpointRefused(f'{kind} {_path(keys)}: {reason}')
    if tensor_bytes > expanded_size_limit(file_size):
        raise CheckpointRefused(
            expansion_refusal('its tensors', tensor_bytes, file_size))
