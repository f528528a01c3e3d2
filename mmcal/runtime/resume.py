"""Where ``--resume`` without a path continues from."""
import logging
import numbers
import os
import os.path as osp
from typing import List, Optional

from mmengine.logging import print_log
from torch.utils.serialization import config as torch_serialization

from .checkpoint_loading import load_checkpoint_file

# What mmengine's Runner.resume restores, besides the schedulers.
RESUME_STATE = ('state_dict', 'optimizer', 'message_hub', 'meta')
# A path in last_checkpoint is far shorter; more is not a pointer.
POINTER_LIMIT = 4096


def missing_resume_state(checkpoint, with_schedulers: bool) -> List[str]:
    """The keys of the training state ``checkpoint`` lacks, e.g.
    ``['optimizer', 'param_schedulers']`` for mmengine's ``best_*.pth``.

    Args:
        checkpoint: what a checkpoint file holds (a dict when it is one).
        with_schedulers: whether the run has ``param_scheduler`` s, whose
            state must then be in the checkpoint too.
    """
    if not isinstance(checkpoint, dict):
        return ['everything (it is not a dict)']
    missing = [
        key for key in RESUME_STATE
        if not isinstance(checkpoint.get(key), dict)
    ]
    meta = checkpoint.get('meta')
    if isinstance(meta, dict):
        missing += [
            f'meta.{key}' for key in ('epoch', 'iter')
            if not isinstance(meta.get(key), numbers.Integral)
        ]
    if with_schedulers and not isinstance(
            checkpoint.get('param_schedulers'), list):
        missing.append('param_schedulers')
    return missing


def why_not_resumable(path: str, with_schedulers: bool) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None when it can.

    The file is loaded with the safe loader, memory-mapped: only the
    pickled structure is read, not the tensors' bytes.
    """
    if osp.islink(path) and not osp.exists(path):
        return f'a symlink to {os.readlink(path)}, which does not exist'
    if not osp.isfile(path):
        return 'not a regular file'
    try:
        with torch_serialization.patch({'load.mmap': True}):
            checkpoint = load_checkpoint_file(path, map_location='cpu')
    except Exception as error:  # refused or unreadable: named, not fatal
        return str(error)
    missing = missing_resume_state(checkpoint, with_schedulers)
    if missing:
        return f'no training state to resume: it lacks {", ".join(missing)}'
    return None


def pointed_checkpoint(work_dir: str):
    """The checkpoint ``work_dir/last_checkpoint`` names, if it exists,
    and else what is wrong with the pointer: ``(path, None)`` or
    ``(None, reason)``."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None, f'{pointer} is missing'
    with open(pointer, errors='replace') as file:
        named = file.read(POINTER_LIMIT).strip()
    if not named:
        return None, f'{pointer} is empty'
    if not osp.isfile(named):
        return None, f'{pointer} names {named}, which is not a file'
    return named, None


def find_resume_checkpoint(work_dir: str,
                           with_schedulers: bool = True) -> Optional[str]:
    """The checkpoint ``--resume`` without a path continues from.

    mmengine follows ``work_dir/last_checkpoint``, a file it writes after
    each save. When that file is missing, empty or points to a file that
    is gone (a kill at the wrong moment), the newest ``*.pth`` in
    ``work_dir`` that holds the training state (see
    :func:`missing_resume_state`) is taken instead, naming the files
    passed over (``best_*.pth`` holds only weights; dangling links).

    Returns:
        The checkpoint, or None when ``work_dir`` has no ``*.pth``
        (training starts afresh).

    Raises:
        RuntimeError: there are ``*.pth`` files, none resumable; each is
            named with the reason.
    """
    named, broken_pointer = pointed_checkpoint(work_dir)
    if named is not None:
        return named
    paths = [
        osp.join(work_dir, name) for name in sorted(os.listdir(work_dir))
        if name.endswith('.pth')
    ] if osp.isdir(work_dir) else []
    files = sorted(filter(osp.isfile, paths), key=osp.getmtime, reverse=True)
    # Dangling links and other non-files are named whatever is taken.
    passed_over = [
        f'{path}: {why_not_resumable(path, with_schedulers)}'
        for path in paths if path not in files
    ]
    for path in files:
        reason = why_not_resumable(path, with_schedulers)
        if reason is None:
            print_log(
                f'--resume: {broken_pointer}; resuming from {path}, the '
                'newest checkpoint with training state' +
                ''.join(f'; passed over {skipped}' for skipped in passed_over),
                logger='current',
                level=logging.WARNING)
            return path
        passed_over.append(f'{path}: {reason}')
    if passed_over:
        raise RuntimeError(
            f'--resume found no checkpoint to resume in {work_dir} '
            f'({broken_pointer}): {"; ".join(passed_over)}. Name one with '
            '--resume PATH, or train in another --work-dir to start afresh')
    return None
