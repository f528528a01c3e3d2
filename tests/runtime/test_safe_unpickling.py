"""numpy values in checkpoints: loaded through stand-ins, attacks refused.

The attack files are loaded in a separate process: on a loader that hands
their state to numpy, they crash the interpreter (segmentation fault).
"""
import copyreg
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader
from numpy._core import multiarray

from mmcal.runtime.safe_unpickling import PLAIN_DTYPES
from mmcal_test_utils import PickledAs, object_dtype_scalar


class NewObj(PickledAs):
    """Pickles as ``cls.__new__(cls, *args)`` (the NEWOBJ opcode)."""

    def __init__(self, cls, *args):
        super().__init__(copyreg.__newobj__, (cls, *args))

    @property
    def __class__(self):
        # The pickler writes NEWOBJ only for an object of that class.
        return self.value[1][0]


def dtype(name, order='<', flags=0):
    """A pickled ``numpy.dtype`` with chosen name and state."""
    return PickledAs(np.dtype, (name, False, True),
                     (3, order, None, None, None, -1, -1, flags))


def array(shape, raw, dtype_name='f8'):
    """A pickled ndarray with chosen shape and data bytes."""
    return PickledAs(multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                     (1, shape, dtype(dtype_name), False, raw))


# name: (object pickled, text the refusal must show to name the culprit)
ATTACKS = {
    # The object dtype with its flags cleared: numpy then reads the 8 bytes
    # as a pointer to a Python object.
    'object_scalar': (object_dtype_scalar(), "'O8'"),
    'object_array': (array((1, ), b'\x41' * 8, 'O8'), "'O8'"),
    'structured_dtype': (PickledAs(
        np.dtype, ('V8', False, True),
        (3, '|', None, ('a', ), {'a': (dtype('O8'), 0)}, 8, 1, 16)), "'V8'"),
    # NEWOBJ calls the class's __new__ directly, skipping a REDUCE.
    'newobj_dtype': (NewObj(np.dtype, 'O8'), "'O8'"),
    'short_array': (array((4, ), b'\0' * 8), 'needs 32 bytes but the file '
                    'holds 8'),
    'long_array': (array((1, ), b'\0' * 16), 'needs 8 bytes'),
    'negative_shape': (array((-1, ), b''), 'shape (-1,)'),
    'huge_shape': (array((2**62, 2**62), b'\0' * 8),
                   f'needs {8 * 2**124} bytes'),
    'float_shape': (array((2.0, ), b'\0' * 16), 'shape (2.0,)'),
    'short_scalar': (PickledAs(multiarray.scalar, (dtype('f8'), b'\0' * 3)),
                     'needs 8 bytes but the file holds 3'),
    'scalar_of_other_type': (PickledAs(multiarray.scalar, ('f8', b'\0' * 8)),
                             "dtype 'f8'"),
    'array_without_state': (PickledAs(multiarray._reconstruct,
                                      (np.ndarray, (0, ), b'b')),
                            'numpy array without state'),
}

LOAD_EACH = """
import sys
import mmcal
from mmengine.runner.checkpoint import CheckpointLoader
for path in sys.argv[1:]:
    try:
        value = CheckpointLoader.load_checkpoint(path)
    except RuntimeError as error:
        print('REFUSED', error, flush=True)
    else:
        print('LOADED', path, repr(value), flush=True)
"""


def load_in_subprocess(paths):
    """Lines printed by loading each file through mmengine's entry point."""
    done = subprocess.run([sys.executable, '-c', LOAD_EACH, *paths],
                          capture_output=True,
                          text=True,
                          timeout=300)
    # A negative code is a signal: the loader crashed instead of refusing.
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    return [line for line in done.stdout.splitlines()
            if line.startswith(('REFUSED', 'LOADED'))]


def test_crafted_numpy_files_are_refused_without_crash(tmp_path):
    paths = {}
    for name, (payload, _) in ATTACKS.items():
        paths[name] = str(tmp_path / f'{name}.pth')
        torch.save({'meta': {'x': payload}}, paths[name])
    lines = load_in_subprocess(list(paths.values()))
    assert len(lines) == len(ATTACKS), lines
    for (name, (_, culprit)), line in zip(ATTACKS.items(), lines):
        assert line.startswith(f'REFUSED Refused to load checkpoint '
                               f'{paths[name]}: '), line
        assert culprit in line, (name, line)


def test_dtype_state_is_never_applied(tmp_path):
    # Flags that tell numpy a float holds object pointers: numpy's own
    # __setstate__ would take them; the stand-in keeps the float.
    path = str(tmp_path / 'flags.pth')
    torch.save({'x': PickledAs(multiarray.scalar,
                               (dtype('f8', flags=0x3f), b'\0' * 8))}, path)
    assert load_in_subprocess([path]) == [
        f"LOADED {path} {{'x': np.float64(0.0)}}"
    ]


def with_numpy1_spelling(path_in, path_out):
    """Rewrite a checkpoint's numpy globals as numpy 1.x names them."""
    with zipfile.ZipFile(path_in) as src, \
            zipfile.ZipFile(path_out, 'w') as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith('data.pkl'):
                assert b'numpy._core.multiarray' in data
                data = data.replace(b'numpy._core.multiarray',
                                    b'numpy.core.multiarray')
            dst.writestr(info, data)


def numpy_values():
    history = HistoryBuffer()
    history.update(0.5)
    history.update(np.float64(0.25))
    return dict(
        history=history,
        empty_history=HistoryBuffer(),
        seed=np.int64(3),
        flag=np.bool_(True),
        big_endian=np.arange(6, dtype='>i4').reshape(2, 3),
        fortran=np.asfortranarray(np.arange(6.).reshape(2, 3)),
        zero_dim=np.array(1.5, dtype=np.float16),
        empty=np.zeros((0, 3), np.complex64),
        nested=(np.float32(1.), [np.ones(2, np.uint8)]),
        weight=torch.ones(2))


@pytest.mark.parametrize('spelling', ['numpy 2', 'numpy 1.x'])
def test_numpy_values_load_unchanged(tmp_path, spelling):
    path = str(tmp_path / 'values.pth')
    torch.save(numpy_values(), path)
    if spelling == 'numpy 1.x':
        with_numpy1_spelling(path, str(tmp_path / 'numpy1.pth'))
        path = str(tmp_path / 'numpy1.pth')
    loaded = CheckpointLoader.load_checkpoint(path)
    expected = numpy_values()
    assert loaded['history'].mean() == pytest.approx(0.375)
    assert loaded['history'].current() == 0.25
    assert loaded['empty_history']._log_history.shape == (0, )
    for key in ('seed', 'flag', 'big_endian', 'fortran', 'zero_dim', 'empty'):
        assert type(loaded[key]) is type(expected[key]), key
        assert loaded[key].dtype == expected[key].dtype, key
        np.testing.assert_array_equal(loaded[key], expected[key])
    assert loaded['fortran'].flags.f_contiguous
    assert loaded['big_endian'].flags.writeable
    assert loaded['nested'][0] == np.float32(1.)
    np.testing.assert_array_equal(loaded['nested'][1][0], [1, 1])
    assert torch.equal(loaded['weight'], torch.ones(2))


def test_plain_dtypes_are_numeric_and_bool_only():
    kinds = {np.dtype(name).kind for name in PLAIN_DTYPES}
    assert kinds == set('biufc')
    assert not {'O8', 'V8', 'S1', 'U1', 'M8', 'm8'} & PLAIN_DTYPES


def test_repeated_array_keeps_sharing(tmp_path):
    shared = np.arange(3.)
    path = str(tmp_path / 'shared.pth')
    torch.save({'a': shared, 'b': [shared, (shared, )]}, path)
    loaded = CheckpointLoader.load_checkpoint(path)
    assert loaded['b'][0] is loaded['a'] and loaded['b'][1][0] is loaded['a']
