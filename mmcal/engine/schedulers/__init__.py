from .continuous_exponential_lr import ContinuousExponentialLR

__all__ = ['ContinuousExponentialLR']
