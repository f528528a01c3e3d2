"""What mmcal adds around the method: safe checkpoint loading, atomic
saving, resuming, runner set-up for the tools, and the patches that make
mmengine use them (:mod:`.patches`)."""
from .atomic_save import AtomicLocalBackend, write_atomically
from .checkpoint_limits import EXPANSION_ENV
from .checkpoint_loading import (UNSAFE_LOAD_ENV, add_unsafe_load_argument,
                                 check_checkpoint_path, load_checkpoint_file,
                                 load_checkpoint_from, unsafe_load_allowed,
                                 unsafe_load_scope)
from .checkpoint_sources import hub_cache_path
from .patches import apply_mmengine_patches
from .resume import find_resume_checkpoint

__all__ = [
    'AtomicLocalBackend', 'write_atomically', 'UNSAFE_LOAD_ENV',
    'add_unsafe_load_argument', 'load_checkpoint_file', 'load_checkpoint_from',
    'unsafe_load_allowed', 'unsafe_load_scope', 'check_checkpoint_path',
    'EXPANSION_ENV', 'hub_cache_path', 'apply_mmengine_patches',
    'find_resume_checkpoint'
]
