"""What a pickle would build, measured from its opcodes before it is built.

torch's weights-only unpickler bounds which globals a pickle may name, but
not the shape of what it builds: it hashes dict keys in C (a tuple key
nested 200,000 deep overflows the C stack) and allocates each storage a
legacy-format file names at the size the pickle states. One pass over the
opcodes with :mod:`pickletools`, following the unpickler's stack and memo,
gives the graph of containers the pickle would build, and from it:

- the nesting depth (a container holding itself counts as unbounded);
- the expanded size: the bytes of text and one byte per object, counting
  every memo reference as a copy, which is what a walk over the result
  (printing, copying, writing class names) would visit, plus what the
  calls torch allows allocate by size (``bytearray(n)``);
- the storages the pickle refers to, with their sizes;
- numbers crafted to share a hash (hashing big ints and floats is not
  seeded), which would make building a dict of them quadratic.

Only the opcodes torch's weights-only unpickler runs are followed. At any
other opcode, or one it cannot run (an empty stack, an unknown memo
index), the scan stops: torch fails at the same place, having built only
what the scan has measured.
"""
import math
import pickletools
from dataclasses import dataclass
from typing import BinaryIO, List

import torch
from torch._utils import IMPORT_MAPPING, NAME_MAPPING

from .checkpoint_limits import (MAX_NESTING, CheckpointRefused,
                                expansion_refusal, expanded_size_limit)

_LEAF = None  # the children of an object that holds no others


@dataclass(frozen=True)
class Global:
    """A ``module.name`` the pickle names (torch checks which)."""
    path: str


@dataclass(frozen=True)
class StorageRef:
    """A storage a pickle refers to by persistent id."""
    key: str
    itemsize: int
    numel: int

    @property
    def nbytes(self) -> int:
        return self.itemsize * self.numel


# torch.<Type>Storage -> item size; the zip format also names UntypedStorage.
STORAGE_ITEMSIZES = {
    f'torch.{name}': dtype.itemsize
    for dtype, name in torch.storage._dtype_to_storage_type_map().items()
} | {'torch.UntypedStorage': 1}
# Callables torch's unpickler allows that allocate memory sized by their int
# arguments, and the most bytes per unit: bytearray(n) fills n bytes,
# torch.Tensor(n, m) and the legacy tensor classes hold n * m elements.
ALLOCATING_CALLS = {'builtins.bytearray': 1, 'torch.Tensor': 8} | {
    f'{cls.__module__}.{cls.__name__}': 8
    for cls in torch._tensor_classes
}


class _Unrunnable(Exception):
    """torch's unpickler stops here too."""


class _Graph:
    """Objects a pickle builds, as nodes: ``children`` lists the nodes an
    object holds (``_LEAF`` for none), ``values`` the value of a literal
    (a number, text, None or a :class:`Global`) or the type of a list or
    tuple."""

    def __init__(self):
        self.children: List = []
        self.weights: List[int] = []
        self.values: List = []
        # Depth when built, raised as items are added: a lower bound (an
        # item added to a container inside others does not raise theirs),
        # which refuses deep pickles as soon as they pass the limit.
        self.depths: List[int] = []

    def add(self, children=_LEAF, weight=1, value=None):
        self.children.append(children)
        self.weights.append(weight)
        self.values.append(value)
        self.depths.append(0)
        node = len(self.children) - 1
        self.hold(node, children or ())
        return node

    def hold(self, node, items) -> None:
        """Record that ``node`` holds ``items`` (already in its children)."""
        if items:
            depth = 1 + max(self.depths[item] for item in items)
            if depth > self.depths[node]:
                self.depths[node] = depth
                if depth > MAX_NESTING:
                    raise CheckpointRefused(_too_deep())

    def literal(self, node, depth=0):
        """The value of a literal, or lists and tuples of literals; else
        raises :class:`_Unrunnable`."""
        if self.children[node] is _LEAF:
            return self.values[node]
        if self.values[node] not in (list, tuple) or depth > MAX_NESTING:
            raise _Unrunnable
        return self.values[node](
            self.literal(child, depth + 1) for child in self.children[node])

    def measure(self, roots) -> tuple:
        """The largest nesting depth and expanded size among ``roots``.

        Iterative: the graph may be deeper than Python's stack.
        """
        depth, size = {}, {}
        for root in roots:
            stack = [(root, False)]
            while stack:
                node, children_done = stack.pop()
                if node in depth:
                    continue
                children = self.children[node] or ()
                if children_done:
                    depth[node] = 1 + max(
                        (depth[child] for child in children), default=-1)
                    size[node] = self.weights[node] + sum(
                        size[child] for child in children)
                    continue
                if node in size:  # entered, not finished: a cycle
                    return float('inf'), 0
                size[node] = None
                stack.append((node, True))
                stack.extend((child, False) for child in children
                             if child not in depth)
        return (max((depth[root] for root in roots), default=0),
                max((size[root] for root in roots), default=0))


def _global(arg: str) -> Global:
    """The global named by GLOBAL's ``module name``, as torch maps the
    Python 2 names that protocol 2 pickles use (``__builtin__``)."""
    module, _, name = arg.partition(' ')
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    return Global(f'{IMPORT_MAPPING.get(module, module)}.{name}')


def _allocated_bytes(graph: _Graph, func: int, args: int) -> int:
    """What calling ``func`` with ``args`` allocates, at most (1 for a call
    that allocates nothing or only in proportion to objects built)."""
    path = getattr(graph.values[func], 'path', None)
    if path not in ALLOCATING_CALLS:
        return 1
    try:
        sizes = graph.literal(args)
    except _Unrunnable:
        return 1
    if not (sizes and all(type(size) is int for size in sizes)):
        return 1
    return 1 + ALLOCATING_CALLS[path] * math.prod(
        max(size, 0) for size in sizes)


# Distinct numbers of one hash a pickle may hold. Dict keys and set items
# of one hash are compared with each other on every insertion: 200,000 of
# them (a 2 MB file) take minutes to build into a dict.
MAX_SAME_HASH = 64


def _count_hash(numbers_by_hash: dict, number) -> None:
    same = numbers_by_hash.setdefault(hash(number), [])
    if number not in same:
        same.append(number)
        if len(same) > MAX_SAME_HASH:
            raise CheckpointRefused(
                f'it holds more than {MAX_SAME_HASH} distinct numbers of one '
                'hash, which would make building a dict or set of them take '
                'quadratic time')


def _too_deep() -> str:
    return (f'its containers nest more than {MAX_NESTING} levels deep, the '
            'most a checkpoint may have (torch would overflow the stack '
            'rebuilding them)')


def _is_view(metadata) -> bool:
    return type(metadata) is tuple and len(metadata) == 3 and type(
        metadata[0]) is str and all(
            type(number) is int and number >= 0 for number in metadata[1:])


def _storage_ref(graph: _Graph, pid: int, index: int) -> StorageRef:
    try:
        value = graph.literal(pid)
    except _Unrunnable:
        value = None
    # zip format: ('storage', type, key, location, numel); the legacy
    # format adds view metadata: None, or (key, offset, size) of a view
    # that torch cuts from the storage it allocated.
    if not (type(value) is tuple and len(value) in (5, 6)
            and value[0] == 'storage' and type(value[2]) is str
            and type(value[4]) is int and value[4] >= 0
            and isinstance(value[1], Global)
            and value[1].path in STORAGE_ITEMSIZES
            and (len(value) == 5 or value[5] is None or _is_view(value[5]))):
        raise CheckpointRefused(
            f'its storage reference #{index} ({value!r:.100}) is not '
            "('storage', a torch storage type, key, location, size)")
    return StorageRef(value[2], STORAGE_ITEMSIZES[value[1].path], value[4])


def _run(opcodes, graph: _Graph, storages: List[StorageRef]) -> tuple:
    """Follow the unpickler's stack.

    Returns:
        (the node of the result or None if the unpickler would fail, every
        node left on the stack or in the memo, the result first)
    """
    stack, marks, memo = [], [], {}
    # Distinct big ints and floats by hash: Python hashes them without a
    # seed, so a file can hold numbers that collide.
    numbers_by_hash = {}

    def pop(count=1):
        if len(stack) < count:
            raise _Unrunnable
        items = stack[len(stack) - count:]
        del stack[len(stack) - count:]
        return items

    def pop_mark():
        if not marks:
            raise _Unrunnable
        items = stack[marks[-1]:]
        del stack[marks.pop():]
        return items

    def hold(items):
        if not stack:
            raise _Unrunnable
        node = stack[-1]
        if graph.children[node] is _LEAF:
            graph.children[node] = []
        graph.children[node].extend(items)
        graph.hold(node, items)

    try:
        for opcode, arg, _ in opcodes:
            name = opcode.name
            if name == 'PROTO':
                continue
            if name == 'STOP':
                result, = pop()
                return result, [result, *stack, *memo.values()]
            if name in ('BINUNICODE', 'SHORT_BINSTRING'):
                stack.append(graph.add(weight=1 + len(arg), value=arg))
            elif name in ('BINFLOAT', 'LONG1'):
                _count_hash(numbers_by_hash, arg)
                stack.append(graph.add(value=arg))
            elif name in ('BININT', 'BININT1', 'BININT2', 'NONE', 'NEWTRUE',
                          'NEWFALSE'):
                stack.append(graph.add(value=arg if arg is not None else {
                    'NEWTRUE': True, 'NEWFALSE': False}.get(name)))
            elif name == 'GLOBAL':
                stack.append(graph.add(value=_global(arg)))
            elif name == 'EMPTY_LIST':
                stack.append(graph.add(children=[], value=list))
            elif name in ('EMPTY_DICT', 'EMPTY_SET'):
                stack.append(graph.add(children=[]))
            elif name == 'EMPTY_TUPLE':
                stack.append(graph.add(children=[], value=tuple))
            elif name == 'MARK':
                marks.append(len(stack))
            elif name == 'TUPLE':
                stack.append(graph.add(children=pop_mark(), value=tuple))
            elif name in ('TUPLE1', 'TUPLE2', 'TUPLE3'):
                stack.append(graph.add(children=pop(int(name[-1])),
                                       value=tuple))
            elif name in ('APPEND', 'SETITEM', 'BUILD'):
                hold(pop(1 if name != 'SETITEM' else 2))
            elif name in ('APPENDS', 'SETITEMS'):
                hold(pop_mark())
            elif name in ('REDUCE', 'NEWOBJ'):
                # What a call returns may hold its arguments.
                call = pop(2)
                stack.append(graph.add(children=call,
                                       weight=_allocated_bytes(graph, *call)))
            elif name == 'BINPERSID':
                pid, = pop()
                storages.append(_storage_ref(graph, pid, len(storages)))
                stack.append(graph.add())
            elif name in ('BINPUT', 'LONG_BINPUT'):
                if not stack:
                    raise _Unrunnable
                memo[arg] = stack[-1]
            elif name in ('BINGET', 'LONG_BINGET'):
                if arg not in memo:
                    raise _Unrunnable
                stack.append(memo[arg])
            else:
                raise _Unrunnable
    except (_Unrunnable, ValueError):  # ValueError: a malformed opcode
        pass
    return None, [*stack, *memo.values()]


@dataclass
class PickleScan:
    """What scanning one pickle found."""
    # Whether torch's unpickler would reach the end (STOP).
    complete: bool
    # The storages the pickle refers to, in order.
    storages: List[StorageRef]
    # The result, when it is a literal or lists and tuples of literals.
    value: object = None


def scan_pickle(file: BinaryIO, file_size: int) -> PickleScan:
    """Check one pickle read from ``file``, which is left after its end.

    ``file_size`` (the checkpoint's) sets the limit on the expanded size.

    Raises:
        CheckpointRefused: nesting deeper than ``MAX_NESTING``, an expanded
            size over the limit, or a malformed storage reference.
    """
    graph, storages = _Graph(), []
    result, built = _run(pickletools.genops(file), graph, storages)
    depth, size = graph.measure(built)
    if depth > MAX_NESTING:
        raise CheckpointRefused('its containers hold themselves' if depth ==
                                float('inf') else _too_deep())
    if size > expanded_size_limit(file_size):
        raise CheckpointRefused(
            expansion_refusal('its pickled objects, counting repeated '
                              'references as copies,', size, file_size))
    scan = PickleScan(result is not None, storages)
    if result is not None:
        try:
            scan.value = graph.literal(result)
        except _Unrunnable:
            pass
    return scan
