"""Train a model with an mmcal (or any mmpretrain) config.

The command line is mmpretrain's ``tools/train.py``; mmcal is imported first,
so configs need no ``custom_imports``. A config without a
``NonFiniteLossHook`` (one mixed from an mmpretrain base) gets one: a
diverging run stops instead of saving NaN models.
"""
import argparse
import os

from mmengine.config import DictAction

from mmcal.engine.hooks import NonFiniteLossHook
from mmcal.runtime import (add_unsafe_load_argument, find_resume_checkpoint,
                           unsafe_load_scope)
from mmcal.runtime.devices import check_amp_device
from mmcal.runtime.runner import (add_launcher_arguments, build_runner,
                                  hook_class, load_config,
                                  set_dataloader_defaults, set_work_dir)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a classifier')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (float16; needs a GPU)')
    parser.add_argument(
        '--no-validate', action='store_true', help='skip validation')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual batch size (config auto_scale_lr)')
    parser.add_argument('--no-pin-memory', action='store_true')
    parser.add_argument('--no-persistent-workers', action='store_true')
    add_unsafe_load_argument(parser)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. train_cfg.max_epochs=2')
    add_launcher_arguments(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def add_non_finite_loss_hook(cfg) -> None:
    """Append ``NonFiniteLossHook`` to ``custom_hooks`` unless there."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(
            issubclass(hook_class(cfg, hook) or object, NonFiniteLossHook)
            for hook in hooks):
        cfg.custom_hooks = [*hooks, dict(type='NonFiniteLossHook')]


def build_config(args):
    cfg = load_config(args.config)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        check_amp_device()
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        # None when there is nothing to resume: training starts afresh.
        cfg.resume = True
        cfg.load_from = find_resume_checkpoint(
            cfg.work_dir, bool(cfg.get('param_scheduler')))
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr'):
            raise KeyError(
                f'--auto-scale-lr needs auto_scale_lr = dict(base_batch_size'
                f'=N) in {args.config}: the global batch its lr is set for')
        cfg.auto_scale_lr.enable = True
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    add_non_finite_loss_hook(cfg)
    set_dataloader_defaults(cfg, not args.no_pin_memory,
                            not args.no_persistent_workers)
    return cfg


@unsafe_load_scope()
def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
