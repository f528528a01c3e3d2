from mmengine.optim.scheduler import ExponentialLR
from mmpretrain.registry import PARAM_SCHEDULERS


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
        if not isinstance(epoch_length, int) or epoch_length <= 0:
            raise ValueError(f'{cls.__name__} needs a positive integer '
                             f'epoch_length, got {epoch_length!r}')
        return super().build_iter_from_epoch(
            *args,
            gamma=gamma**(1 / epoch_length),
            epoch_length=epoch_length,
            **kwargs)
