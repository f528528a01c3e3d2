import logging
import math
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

from mmcal.runtime.finite_scores import (listed_images, non_finite_images,
                                         sample_names, sample_scores)
from ..optimizers import FiniteLossOptimWrapper

ACTIONS = ('raise', 'skip')


def format_losses(values: Dict[str, float]) -> str:
    return ', '.join(f'{key}={value:.6g}' for key, value in values.items())


def latest_checkpoint(runner) -> str:
    """'the latest checkpoint is <path>', or that none was saved."""
    last = runner.message_hub.get_info('last_ckpt')
    return (f'the latest checkpoint is {last}'
            if last else 'no checkpoint was saved')


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training (or report skipped updates) on a NaN or infinite loss,
    and stop it on non-finite validation scores.

    After every training iteration it reads the loss terms that mmengine's
    ``RuntimeInfoHook`` has already copied to the host, so it adds no
    device sync. It runs before the checkpoint hook: a faulty iteration
    never reaches a checkpoint.

    The loss can stay finite while the model diverges: in training mode
    BatchNorm normalises activations by the batch's statistics, however
    large the weights have grown, while in eval mode its running
    statistics lag behind and the activations overflow to NaN (a tiny CAL
    ResNet at lr 1 does so within two iterations). So the scores of every
    validation batch are checked too (one sync per batch), before a best
    checkpoint can be chosen from them. ``tools/train.py`` adds this hook
    to configs that have none.

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
        raise FloatingPointError(
            f'Non-finite loss at {where}: {format_losses(faulty)} (all '
            f'terms: {format_losses(values)}). Training stopped before '
            f'saving this state; {latest_checkpoint(runner)}. Lower the '
            'learning rate or check '
            "the data; NonFiniteLossHook(action='skip') with "
            "optim_wrapper.type='FiniteLossOptimWrapper' skips such "
            'updates instead.')

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch=None,
                       outputs=None) -> None:
        samples = list(outputs or [])
        scores = sample_scores(samples)
        if scores is None:
            return
        faulty = non_finite_images(
            scores, sample_names(samples, batch_idx * len(samples)))
        if not faulty:
            return
        raise FloatingPointError(
            f'Non-finite validation scores after iteration {runner.iter} '
            f'(epoch {runner.epoch}) for {listed_images(faulty, len(samples))}'
            ' although the training loss was finite: the model has '
            'diverged (eval-mode BatchNorm statistics overflow at too high a '
            f'learning rate). Training stopped; {latest_checkpoint(runner)} '
            'and may hold this state. Lower the learning rate.')
