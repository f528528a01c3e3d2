"""mmcal: Counterfactual Attention Learning for MMPretrain.

Importing the package registers its models, hooks and datasets into
MMPretrain's registries and makes checkpoint loading and saving safe (see
:mod:`mmcal.utils.checkpoint`).
"""
import warnings

# mmcv-lite lacks the compiled ops; mmpretrain's models never use the one
# this warning is about.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

from . import datasets, engine, models, utils  # noqa: F401
from .version import __version__

__all__ = ['__version__']
