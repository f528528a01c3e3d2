from .bird_set import BirdSet
from .checked_cub import CheckedCUB
from .checked_fgvc_aircraft import CheckedFGVCAircraft
from .checked_stanford_cars import CheckedStanfordCars
from .cub_folder import CUBFolder
from .nabirds import NABirds
from .synthetic import write_bird_set, write_synthetic_birds
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BirdSet', 'CheckedCUB', 'CheckedFGVCAircraft', 'CheckedStanfordCars',
    'CUBFolder', 'NABirds', 'write_bird_set',
    'write_synthetic_birds'
]
