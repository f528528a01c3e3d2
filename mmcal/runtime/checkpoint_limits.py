"""How large and how deep a checkpoint may unpack, and the refusal.

A checkpoint's size on disk says little about what unpickling it builds:
a tuple nested 200,000 deep (200 KB) overflows the C stack when torch's
unpickler hashes it, references to one list can be repeated into a
structure of billions of items (a "billion laughs"), a compressed zip
record or tensors viewing one storage many times can stand for far more
bytes than the file holds. These limits bound each, relative to the file
where an honest file's own size is the measure.
"""
import os

# Honest checkpoints nest about a dozen levels (checkpoint, optimizer,
# state, parameter, tensor and its arguments); torch hashes and mmengine
# walks containers recursively, so depth is bounded well below either
# stack limit.
MAX_NESTING = 100

EXPANSION_ENV = 'MMCAL_CHECKPOINT_EXPANSION'
# How many times its own size a checkpoint may unpack to. Honest files
# unpack to about their size: their tensors view storages stored once in
# the file, and their pickle repeats only small shared values.
DEFAULT_EXPANSION = 8
# Small files hold a few shared values too: they may always unpack to this.
MIN_EXPANDED_SIZE = 1 << 20


class CheckpointRefused(Exception):
    """A checkpoint would unpack beyond a limit, or holds a value that
    mmcal does not rebuild; the message says which and why."""


def max_expansion() -> float:
    """The ratio set by ``MMCAL_CHECKPOINT_EXPANSION`` (default 8).

    Raises:
        ValueError: the variable is set to anything but a positive number.
    """
    value = os.environ.get(EXPANSION_ENV, '')
    if not value:
        return DEFAULT_EXPANSION
    try:
        ratio = float(value)
    except ValueError:
        ratio = float('nan')
    if not ratio > 0 or ratio == float('inf'):
        raise ValueError(f'{EXPANSION_ENV}={value!r} is not a positive '
                         'number (how many times its file size a checkpoint '
                         f'may unpack to; default {DEFAULT_EXPANSION})')
    return ratio


def expanded_size_limit(file_size: int) -> int:
    """The most a file of ``file_size`` bytes may unpack to, in bytes."""
    return max(MIN_EXPANDED_SIZE, int(max_expansion() * file_size))


def expansion_refusal(what: str, size: int, file_size: int) -> str:
    """Why a checkpoint that unpacks ``what`` to ``size`` bytes is refused."""
    return (f'{what} unpack to {size} bytes, more than '
            f'{expanded_size_limit(file_size)} for a file of {file_size} '
            f'bytes ({EXPANSION_ENV}={max_expansion():g} times the file size; '
            'raise it for a file you trust)')
