from .checkpoint import (UNSAFE_LOAD_ENV, add_unsafe_load_argument,
                         find_resume_checkpoint, load_checkpoint_file,
                         load_checkpoint_from, unsafe_load_allowed)
from .checkpoint_sources import hub_cache_path

__all__ = [
    'UNSAFE_LOAD_ENV', 'add_unsafe_load_argument', 'find_resume_checkpoint',
    'hub_cache_path', 'load_checkpoint_file', 'load_checkpoint_from',
    'unsafe_load_allowed'
]
