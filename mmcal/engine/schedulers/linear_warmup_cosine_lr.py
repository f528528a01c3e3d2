import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmpretrain.registry import PARAM_SCHEDULERS

from .epoch_length import check_epoch_length

# A run shorter than two warm-ups still decays: it warms up over its first
# half only.
MAX_WARMUP_FRACTION = 0.5


def warmup_cosine_factor(step: int, length: int, warmup: float,
                         start_factor: float) -> float:
    """Factor of the base lr at ``step`` (0-based) of ``length`` steps.

    Linear from ``start_factor`` to 1 over the first ``warmup`` steps (at
    most ``MAX_WARMUP_FRACTION`` of the run), then a half cosine from 1
    towards 0 at ``length``. ``warmup`` may be fractional.
    """
    warmup = min(warmup, length * MAX_WARMUP_FRACTION)
    if step < warmup:
        return start_factor + (1 - start_factor) * step / warmup
    return (1 + math.cos(math.pi * (step - warmup) / (length - warmup))) / 2


@PARAM_SCHEDULERS.register_module()
class LinearWarmUpCosineLR(LRSchedulerMixin, _ParamScheduler):
    """Linear warm-up, then cosine annealing to the end of the run.

    One scheduler for both phases, so that the boundary follows the run's
    length: a Runner gives a scheduler without ``end`` the run's
    ``train_cfg.max_epochs`` (``max_iters`` when ``by_epoch=False``), and
    the warm-up is shortened to half the run when the run is shorter than
    twice ``warmup``. mmengine's ``LinearLR`` + ``CosineAnnealingLR`` pair
    fixes the boundary in the config and refuses a run that ends there.
    The lr is ``lr * warmup_cosine_factor(step, end - begin, ...)``.

    Args:
        warmup: length of the warm-up, in epochs when ``by_epoch`` (may be
            fractional), else in iterations.
        start_factor: lr factor at the first step, in (0, 1].
        Others as mmengine's schedulers; ``end`` is required outside a
        Runner.
    """

    def __init__(self, optimizer, warmup: float, start_factor: float = 0.1,
                 begin: int = 0, end: int = INF, last_step: int = -1,
                 by_epoch: bool = True, verbose: bool = False):
        name = type(self).__name__
        if end == INF:
            raise ValueError(
                f'{name} needs the length of the run: leave its `end` out '
                'of param_scheduler in a Runner config (it becomes '
                'train_cfg.max_epochs, or max_iters with by_epoch=False) '
                'or set it')
        if end <= begin:
            raise ValueError(
                f'{name} has begin={begin} and end={end}: the run '
                '(train_cfg.max_epochs, or `end`) must end after `begin`')
        if not warmup >= 0:
            raise ValueError(f'{name} needs warmup >= 0, got {warmup!r}')
        if not 0 < start_factor <= 1:
            raise ValueError(
                f'{name} needs 0 < start_factor <= 1, got {start_factor!r}')
        self.warmup = warmup
        self.start_factor = start_factor
        super().__init__(optimizer, begin=begin, end=end,
                         last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls, *args, warmup, begin=0, end=INF,
                              by_epoch=True, epoch_length=None, **kwargs):
        """The epoch-based config stepped at every iteration."""
        check_epoch_length(cls.__name__, epoch_length)
        return cls(*args,
                   warmup=warmup * epoch_length,
                   begin=int(begin * epoch_length),
                   end=end if end == INF else int(end * epoch_length),
                   by_epoch=False,
                   **kwargs)

    def _get_value(self) -> list:
        factor = warmup_cosine_factor(self.last_step, self.end - self.begin,
                                      self.warmup, self.start_factor)
        return [base * factor for base in self.base_values]
