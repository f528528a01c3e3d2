from .checkpoint import (UNSAFE_LOAD_ENV, add_unsafe_load_argument,
                         find_resume_checkpoint, load_checkpoint_file,
                         unsafe_load_allowed)

__all__ = [
    'UNSAFE_LOAD_ENV', 'add_unsafe_load_argument', 'find_resume_checkpoint',
    'load_checkpoint_file', 'unsafe_load_allowed'
]
