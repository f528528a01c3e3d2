"""What a checkpoint may hold besides tensors, and stand-ins that build it.

An mmengine Runner checkpoint holds the message hub's ``HistoryBuffer``
objects, whose state is numpy arrays, and numpy scalars in ``meta``. Letting
torch's weights-only unpickler call numpy's own classes would hand
file-controlled state to numpy's C code: ``numpy.dtype.__setstate__`` takes
raw flags and sizes, so a file can make numpy read a pointer from its bytes.

So the numpy names a pickle uses are mapped to stand-ins defined here:
dtypes are accepted only as a plain numeric or bool type given by name,
array and scalar bytes are checked against their shape and item size, and
the values are built with ``numpy.frombuffer``. No numpy object ever sees
state from the file. Arrays are rebuilt in place (a pickle's BUILD step
fills the object it created), so :func:`restore_arrays` swaps the finished
stand-ins for real arrays after unpickling.
"""
import math
import pickle

import numpy as np
from mmengine.logging.history_buffer import HistoryBuffer

# kind + item size, as numpy writes them when pickling a dtype; object,
# void (structured), string and datetime types are deliberately absent.
PLAIN_DTYPES = frozenset(
    np.dtype(t).str[1:] for t in (np.bool_, np.int8, np.int16, np.int32,
                                  np.int64, np.uint8, np.uint16, np.uint32,
                                  np.uint64, np.float16, np.float32,
                                  np.float64, np.complex64, np.complex128))


def _refuse(message: str):
    raise pickle.UnpicklingError(message)


class _Dtype:
    """Stands in for ``numpy.dtype``: a plain numeric or bool dtype by name.

    Validation happens in ``__new__`` so that the pickle NEWOBJ opcode,
    which calls ``__new__`` directly, cannot skip it.
    """

    def __new__(cls, name, align=False, copy=True):
        if not isinstance(name, str) or name not in PLAIN_DTYPES:
            _refuse(f'numpy dtype {name!r} is not a plain numeric or bool '
                    f'type ({", ".join(sorted(PLAIN_DTYPES))})')
        self = super().__new__(cls)
        self.dtype = np.dtype(name)
        return self

    def __setstate__(self, state):
        # numpy writes (version, byte order, subarray, names, fields, item
        # size, alignment, flags): only the byte order is taken; the rest is
        # what makes numpy's own __setstate__ unsafe and is never applied.
        order = state[1] if isinstance(state, tuple) and len(state) > 1 \
            else None
        if order not in ('<', '>', '|', '='):
            _refuse(f'numpy dtype state {state!r} has no valid byte order')
        if order in '<>':
            self.dtype = self.dtype.newbyteorder(order)


def _checked_bytes(raw, itemsize: int, count: int, what: str) -> bytes:
    if type(raw) is not bytes:
        _refuse(f'{what} data is {type(raw).__name__}, not bytes')
    if len(raw) != itemsize * count:
        _refuse(f'{what} needs {itemsize * count} bytes but the file holds '
                f'{len(raw)}')
    return raw


def _scalar(dtype, raw):
    """Stands in for ``numpy.core.multiarray.scalar``."""
    if type(dtype) is not _Dtype:
        _refuse(f'numpy scalar of dtype {dtype!r}')
    what = f'numpy {dtype.dtype} scalar'
    return np.frombuffer(
        _checked_bytes(raw, dtype.dtype.itemsize, 1, what), dtype.dtype)[0]


class _Array:
    """Stands in for ``numpy.ndarray`` until :func:`restore_arrays`."""

    # Unhashable, so that it cannot hide as a dict key, which
    # restore_arrays would not replace.
    __hash__ = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5
                and state[0] == 1):
            _refuse(f'numpy array state {state!r:.100} is not '
                    '(1, shape, dtype, fortran order, bytes)')
        _, shape, dtype, fortran, raw = state
        if not (type(shape) is tuple and all(
                type(n) is int and n >= 0 for n in shape)):
            _refuse(f'numpy array shape {shape!r:.100} is not a tuple of '
                    'non-negative integers')
        if type(dtype) is not _Dtype or type(fortran) is not bool:
            _refuse(f'numpy array of dtype {dtype!r:.100}')
        what = f'numpy {dtype.dtype} array of shape {shape}'
        raw = _checked_bytes(raw, dtype.dtype.itemsize, math.prod(shape),
                             what)
        # A copy: frombuffer over bytes is read-only.
        self.array = np.frombuffer(raw, dtype.dtype).reshape(
            shape, order='F' if fortran else 'C').copy(order='K')


def _reconstruct(subtype, shape, typecode):
    """Stands in for ``numpy.core.multiarray._reconstruct``."""
    if subtype is not _Array:
        _refuse(f'numpy array of type {subtype!r}')
    return _Array()


def _empty_bytes():
    """Stands in for ``bytes``: protocol 2 pickles ``b''`` as ``bytes()``.

    Numpy writes ``b''`` as the data of an empty array (a ``HistoryBuffer``
    before its first update); other bytes are pickled with
    ``_codecs.encode``, which torch allows.
    """
    return b''


def _history_buffer_method(owner, name: str):
    """Stands in for ``getattr`` while unpickling a checkpoint.

    A pickled ``HistoryBuffer`` names its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; allowing the real ``getattr`` would
    let a file read any attribute of any object it can build.
    """
    # The built-in statistics are only entered into _statistics_methods by
    # the first HistoryBuffer built in this process.
    allowed = {
        'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods
    }
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    _refuse(f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint')


def checkpoint_safe_globals() -> list:
    """Globals besides tensors that Runner checkpoints name, as stand-ins.

    Both module spellings are mapped: numpy 1.x writes
    ``numpy.core.multiarray``, numpy 2 ``numpy._core.multiarray``.
    """
    multiarray = [(stand_in, f'{module}.{name}')
                  for module in ('numpy.core.multiarray',
                                 'numpy._core.multiarray')
                  for name, stand_in in (('_reconstruct', _reconstruct),
                                         ('scalar', _scalar))]
    return [
        HistoryBuffer, *multiarray, (_Array, 'numpy.ndarray'),
        (_Dtype, 'numpy.dtype'), (_empty_bytes, 'builtins.bytes'),
        (_history_buffer_method, 'builtins.getattr')
    ]


def restore_arrays(obj, memo=None):
    """Replace the array stand-ins in an unpickled checkpoint by arrays.

    Walks what weights-only unpickling can build: containers and
    ``HistoryBuffer`` attributes. Dicts and lists are updated in place,
    tuples rebuilt. ``memo`` maps ``id`` to (object, result), keeping the
    object alive so that its id is not reused, for shared and cyclic
    references.
    """
    memo = {} if memo is None else memo
    if id(obj) in memo:
        return memo[id(obj)][1]
    if type(obj) is _Array:
        if not hasattr(obj, 'array'):
            _refuse('numpy array without state')
        result = obj.array
    elif type(obj) is tuple:
        result = tuple(restore_arrays(item, memo) for item in obj)
    else:
        result = obj
        memo[id(obj)] = (obj, result)  # before the walk: cycles end here
        if isinstance(obj, HistoryBuffer):
            _restore_items(obj.__dict__, memo)
        elif isinstance(obj, (dict, list)):
            _restore_items(obj, memo)
    memo[id(obj)] = (obj, result)
    return result


def _restore_items(container, memo) -> None:
    keys = container.keys() if isinstance(container, dict) else range(
        len(container))
    for key in list(keys):
        container[key] = restore_arrays(container[key], memo)
