"""Where ``--resume`` without a path continues from."""
import os
import os.path as osp
from typing import Optional


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` without a path continues from.

    mmengine follows ``work_dir/last_checkpoint``, a file it writes
    non-atomically after each save. When that file is missing, empty or
    points to a file that is gone (a kill at the wrong moment), the newest
    ``*.pth`` in ``work_dir`` is taken instead of failing.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as file:
            named = file.read().strip()
        if named and osp.isfile(named):
            return named
    candidates = [
        osp.join(work_dir, name) for name in os.listdir(work_dir)
        if name.endswith('.pth')
    ] if osp.isdir(work_dir) else []
    return max(candidates, key=osp.getmtime, default=None)
