import logging
import math
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from ..optimizers import FiniteLossOptimWrapper

ACTIONS = ('raise', 'skip')


def format_losses(values: Dict[str, float]) -> str:
    return ', '.join(f'{key}={value:.6g}' for key, value in values.items())


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training (or report skipped updates) on a NaN or infinite loss.

    After every training iteration it reads the loss terms that mmengine's
    ``RuntimeInfoHook`` has already copied to the host, so it adds no
    device sync. It runs before the checkpoint hook: a faulty iteration
    never reaches a checkpoint.

    Args:
        action: ``'raise'`` stops with a ``FloatingPointError`` naming the
            iteration and the non-finite terms; the parameters in memory may
            already hold the faulty update, but none is saved.
            ``'skip'`` needs ``optim_wrapper=dict(type=
            'FiniteLossOptimWrapper', ...)``, which leaves the parameters
            untouched on such a batch; the hook then warns with the terms
            and the number of skipped updates, and training goes on.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, action: str = 'raise'):
        if action not in ACTIONS:
            raise ValueError(f'NonFiniteLossHook action must be one of '
                             f'{ACTIONS}, got {action!r}')
        self.action = action

    def before_train(self, runner) -> None:
        if self.action == 'skip' and not isinstance(runner.optim_wrapper,
                                                    FiniteLossOptimWrapper):
            raise ValueError(
                "NonFiniteLossHook(action='skip') needs optim_wrapper="
                "dict(type='FiniteLossOptimWrapper', ...) to skip updates; "
                f'the config builds {type(runner.optim_wrapper).__name__}')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs:
            return
        values = {
            key: runner.message_hub.get_scalar(f'train/{key}').current()
            for key in outputs
        }
        faulty = {k: v for k, v in values.items() if not math.isfinite(v)}
        if not faulty:
            return
        where = (f'iteration {runner.iter + 1} (epoch {runner.epoch + 1}, '
                 f'batch {batch_idx + 1} of the epoch)')
        if self.action == 'skip':
            print_log(
                f'Skipped the update of {where}: non-finite loss '
                f'{format_losses(faulty)} (all terms: '
                f'{format_losses(values)}); '
                f'{runner.optim_wrapper.num_skipped} updates skipped so far.',
                logger='current',
                level=logging.WARNING)
            return
        last = runner.message_hub.get_info('last_ckpt')
        saved = (f'the latest checkpoint is {last}'
                 if last else 'no checkpoint was saved')
        raise FloatingPointError(
            f'Non-finite loss at {where}: {format_losses(faulty)} (all '
            f'terms: {format_losses(values)}). Training stopped before '
            f'saving this state; {saved}. Lower the learning rate or check '
            "the data; NonFiniteLossHook(action='skip') with "
            "optim_wrapper.type='FiniteLossOptimWrapper' skips such "
            'updates instead.')
