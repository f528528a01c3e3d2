"""Whether a tensor's view of its storage is one honest code writes.

``torch.load`` rebuilds a tensor from a storage and any offset, sizes and
strides the file states. A stride-0 or overlapping view is legal in torch,
but in-place kernels that trust their operands (CPU fused SGD and AdamW)
write each element once per alias, past the storage. Tensors saved from
models and optimizers are views that never overlap.
"""
from typing import Optional, Sequence

import torch


def overlap_reason(size: Sequence[int], stride: Sequence[int]) -> \
        Optional[str]:
    """Why a view with ``size`` and ``stride`` (same length) maps two
    elements to one storage offset, or None when it cannot.

    Dimensions of one element or none never alias. Taken by increasing
    stride, each stride must step past every offset the smaller dimensions
    reach: then each offset is reached once, as digits of a number are.
    """
    reach = 0
    for step, length in sorted(
            (step, length) for length, step in zip(size, stride)
            if length > 1):
        if step <= reach:
            return (f'sizes {tuple(size)} with strides {tuple(stride)} '
                    'make elements share memory')
        reach += step * (length - 1)
    return None


def view_reason(tensor: torch.Tensor) -> Optional[str]:
    """Why ``tensor`` is not a plain view of its own storage, or None.

    Plain: strided, not nested, non-overlapping and within its storage.
    """
    if tensor.is_nested or tensor.layout is not torch.strided:
        return f'a {tensor.layout} tensor is not a plain strided tensor'
    if tensor.numel() == 0 or tensor.device.type == 'meta':
        return None
    size, stride = tensor.shape, tensor.stride()
    reason = overlap_reason(size, stride)
    if reason:
        return reason
    end = tensor.storage_offset() + sum(
        step * (length - 1) for length, step in zip(size, stride)) + 1
    if end * tensor.element_size() > tensor.untyped_storage().nbytes():
        return (f'it reaches byte {end * tensor.element_size()} of a '
                f'storage of {tensor.untyped_storage().nbytes()} bytes')
    return None


def is_dense(tensor: torch.Tensor) -> bool:
    """Whether a plain view covers exactly ``numel`` consecutive elements
    (any dimension order, as a channels-last tensor does)."""
    return tensor.numel() == 0 or sum(
        step * (length - 1) for length, step in zip(
            tensor.shape, tensor.stride())) + 1 == tensor.numel()
