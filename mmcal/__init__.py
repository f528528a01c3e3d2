"""mmcal: Counterfactual Attention Learning for MMPretrain.

Importing the package registers its models, hooks and datasets into
MMPretrain's registries, and applies :mod:`mmcal.runtime.patches`: every
checkpoint source loads safely and checkpoints are saved atomically.
"""
from .runtime import apply_mmengine_patches

# Before mmpretrain is imported: one patch silences a warning of its import.
apply_mmengine_patches()

from . import datasets, engine, models, visualization  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__']
