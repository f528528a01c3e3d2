from mmengine.optim.scheduler import ExponentialLR
from mmpretrain.registry import PARAM_SCHEDULERS

from .epoch_length import check_epoch_length


@PARAM_SCHEDULERS.register_module()
class ContinuousExponentialLR(ExponentialLR):
    """``ExponentialLR`` whose ``gamma`` stays a factor per epoch when it
    is applied at every iteration.

    With ``convert_to_iter_based=True`` the learning rate after a fraction
    ``t`` of training epochs is ``lr * gamma ** t``: ``gamma`` becomes
    ``gamma ** (1 / epoch_length)`` per iteration. mmengine's
    ``ExponentialLR`` keeps ``gamma`` unchanged when converted, so it would
    multiply the learning rate by the per-epoch factor at every iteration.
    Epoch-based (not converted), it is ``ExponentialLR``.

    Args:
        gamma: multiplicative decay per epoch.
        Others as ``ExponentialLR``.
    """

    @classmethod
    def build_iter_from_epoch(cls, *args, gamma, epoch_length=None,
                              **kwargs):
        check_epoch_length(cls.__name__, epoch_length)
        return super().build_iter_from_epoch(
            *args,
            gamma=gamma**(1 / epoch_length),
            epoch_length=epoch_length,
            **kwargs)
