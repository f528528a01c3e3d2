"""Test a checkpoint with an mmcal (or any mmpretrain) config.

The command line is mmpretrain's ``tools/test.py``. The checkpoint is loaded
strictly: a checkpoint of another model fails with the keys at fault instead
of testing a half-loaded model, and a model whose scores are not finite (a
diverged one) fails naming the checkpoint instead of testing at 0 %.
"""
import argparse
import functools
import os

import mmengine
from mmengine.config import DictAction
from mmengine.evaluator import DumpResults

from mmcal.runtime import (add_unsafe_load_argument, check_checkpoint_path,
                           unsafe_load_scope)
from mmcal.runtime.finite_scores import FiniteTestScores
from mmcal.runtime.runner import (add_launcher_arguments, build_runner,
                                  hook_class, load_config,
                                  set_dataloader_defaults, set_work_dir)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a classifier')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for the test logs')
    parser.add_argument('--out', help='dump predictions or metrics here')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='what --out holds (default: predictions)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. model.test_cfg.flip=True')
    parser.add_argument(
        '--show-dir', help='save images with predictions to this folder')
    parser.add_argument('--show', action='store_true', help='show results')
    parser.add_argument('--interval', type=int, default=1)
    parser.add_argument('--wait-time', type=float, default=2)
    parser.add_argument('--no-pin-memory', action='store_true')
    parser.add_argument('--tta', action='store_true', help='flip TTA')
    parser.add_argument('--amp', action='store_true', help='fp16 test')
    add_unsafe_load_argument(parser)
    add_launcher_arguments(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.out_item is not None and args.out is None:
        parser.error('--out-item needs --out')
    return args


def add_flip_tta(cfg):
    cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
    if 'tta_pipeline' not in cfg:
        pipeline = [*cfg.test_dataloader.dataset.pipeline]
        pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[
                dict(type='RandomFlip', prob=1.),
                dict(type='RandomFlip', prob=0.)
            ], [pipeline[-1]]])
        cfg.tta_pipeline = pipeline
    cfg.model = dict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    drop_ema_hooks(cfg)


def drop_ema_hooks(cfg) -> None:
    """Remove the ``EMAHook`` s of a config whose model is TTA-wrapped.

    Such a hook would average the wrapper, whose keys (``module.*``) are
    not the checkpoint's EMA keys: it would load none of them and test the
    untrained copy it made. A checkpoint's ``state_dict`` already holds the
    EMA weights (``EMAHook`` saves them there), so they are tested without
    it; testing the original weights instead needs a run without --tta.
    """
    from mmengine.hooks import EMAHook
    kept = []
    for hook in cfg.get('custom_hooks') or []:
        if not issubclass(hook_class(cfg, hook) or object, EMAHook):
            kept.append(hook)
        elif (hook.get('evaluate_on_origin')
              or not hook.get('evaluate_on_ema', True)):
            raise ValueError(
                f'custom_hooks: {hook["type"]} is set to test the original '
                'weights (evaluate_on_origin / evaluate_on_ema); --tta tests '
                "the checkpoint's EMA weights only: test without --tta")
    cfg.custom_hooks = kept


def build_config(args):
    cfg = load_config(args.config)
    check_checkpoint_path(args.checkpoint)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    cfg.load_from = None
    if args.amp:
        cfg.test_cfg.fp16 = True
    if args.show or args.show_dir is not None:
        if 'visualization' not in cfg.default_hooks:
            raise KeyError('--show/--show-dir need default_hooks.'
                           "visualization=dict(type='VisualizationHook')")
        cfg.default_hooks.visualization.update(
            enable=True,
            show=args.show,
            wait_time=args.wait_time,
            out_dir=args.show_dir,
            interval=args.interval)
    # Options first: they name the keys of the config as written (e.g.
    # model.backbone), not those of the TTA wrapper built from it.
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.tta:
        add_flip_tta(cfg)
    set_dataloader_defaults(cfg, not args.no_pin_memory, False)
    return cfg


def load_when_hooks_are_ready(runner, checkpoint: str) -> None:
    """Make ``runner.test()`` load ``checkpoint``, strictly, where it
    loads a config's ``load_from``: after the hooks' ``before_run``.

    Some hooks read the checkpoint and need their ``before_run`` first
    (``EMAHook`` fills the EMA copy it builds there, and then tests the
    EMA weights); the Runner's own loading of ``load_from`` is not strict.
    """
    runner.load_or_resume = functools.partial(
        runner.load_checkpoint, checkpoint, strict=True)


@unsafe_load_scope()
def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    runner = build_runner(cfg)
    load_when_hooks_are_ready(runner, args.checkpoint)
    runner.register_hook(FiniteTestScores(args.checkpoint))
    if args.out and args.out_item in (None, 'pred'):
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main()
