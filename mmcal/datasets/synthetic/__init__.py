"""The built-in synthetic bird set: :mod:`.drawing` paints one bird,
:mod:`.writing` writes a whole set to disk."""
from .drawing import (PART_NAMES, PART_OPTIONS, Species, class_names,
                      draw_bird_image, make_species)
from .writing import (DEMO_SET, ensure_synthetic_birds, write_bird_set,
                      write_synthetic_birds)

__all__ = [
    'DEMO_SET', 'PART_NAMES', 'PART_OPTIONS', 'Species', 'class_names',
    'draw_bird_image', 'ensure_synthetic_birds', 'make_species',
    'write_bird_set', 'write_synthetic_birds'
]
