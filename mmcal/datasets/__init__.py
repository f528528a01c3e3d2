from .bird_set import BirdSet
from .checked_cub import CheckedCUB
from .cub_folder import CUBFolder
from .synthetic import write_bird_set, write_synthetic_birds
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BirdSet', 'CheckedCUB', 'CUBFolder', 'write_bird_set',
    'write_synthetic_birds'
]
