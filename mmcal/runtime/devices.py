"""The ``--device`` of the tools, checked before a model is built: torch's
own error for a missing GPU is a driver message that names neither."""
from typing import List

import torch


def available_devices() -> List[str]:
    """Devices this process can use, e.g. ``['cpu', 'cuda:0', 'cuda:1']``."""
    devices = ['cpu']
    if torch.cuda.is_available():
        devices += [f'cuda:{i}' for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append('mps')
    return devices


def why_no_cuda() -> str:
    if torch.version.cuda is None:
        return 'this torch was built without CUDA'
    return 'no GPU is visible to this process'


def check_device(device: str) -> torch.device:
    """The torch device ``device`` names, if this process has it.

    Raises:
        ValueError: ``device`` is no device name, or names a device that is
            not available; the message lists the available ones.
    """
    available = available_devices()
    where = f'available devices: {", ".join(available)}'
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(
            f'--device {device!r} is not a device name; {where}') from None
    if parsed.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: CUDA is not available '
                         f'({why_no_cuda()}); {where}')
    types = {name.split(':')[0] for name in available}
    # cpu:N is the one CPU; cuda without an index is the current GPU.
    if parsed.type not in types or (parsed.type != 'cpu'
                                    and parsed.index is not None
                                    and str(parsed) not in available):
        raise ValueError(f'--device {device} is not available; {where}')
    return parsed


def check_amp_device() -> None:
    """Refuse ``--amp`` where mmengine's ``AmpOptimWrapper`` cannot run.

    It autocasts to float16 with a loss scaler and asserts a CUDA, NPU, MLU
    or MUSA device; on a CPU it would fail with that bare assertion.

    Raises:
        RuntimeError: naming what ``--amp`` needs and the devices found.
    """
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    if not (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available()):
        raise RuntimeError(
            '--amp trains with float16 autocast and loss scaling '
            "(mmengine's AmpOptimWrapper), which needs a CUDA, NPU, MLU or "
            'MUSA device; available devices: '
            f'{", ".join(available_devices())}. Train without --amp here.')
