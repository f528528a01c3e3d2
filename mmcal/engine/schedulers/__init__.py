from .continuous_exponential_lr import ContinuousExponentialLR
from .linear_warmup_cosine_lr import LinearWarmUpCosineLR

__all__ = ['ContinuousExponentialLR', 'LinearWarmUpCosineLR']
