"""The bird recipe's validation, plateau schedule and best checkpoint, run
with the tiny model in place of ResNet-152."""
import os

from mmcal_test_utils import tiny_model_cfg
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmcal.utils.config import load_config

from .conftest import GENERATED_CLASSES, dataloader_overrides


class RecordValTop1(Hook):

    def __init__(self):
        self.top1 = []

    def after_val_epoch(self, runner, metrics=None):
        self.top1.append(metrics['accuracy/top1'])


def test_bird_recipe_keeps_best_checkpoint_and_plateau_reads_top1(
        data_roots, tmp_path):
    cfg = load_config('configs/cal_r152_birds.py')
    cfg.merge_from_dict(dataloader_overrides(cfg, data_roots))
    model = tiny_model_cfg(num_classes=GENERATED_CLASSES)
    # The recipe's own (top-level) preprocessor: the bird set's mean/std.
    model.pop('data_preprocessor')
    cfg.model = model
    cfg.train_cfg.max_epochs = 3
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    record = RecordValTop1()
    runner.register_hook(record)
    runner.train()

    assert len(record.top1) == 3  # validation every epoch
    plateau, = runner.param_schedulers
    assert plateau.best == max(record.top1)
    # The first epoch reaching the best top-1 is kept; periodic saves
    # rotate (2 kept) without touching it.
    best_epoch = record.top1.index(max(record.top1)) + 1
    files = sorted(name for name in os.listdir(tmp_path)
                   if name.endswith('.pth'))
    assert files == sorted([f'best_accuracy_top1_epoch_{best_epoch}.pth',
                            'epoch_2.pth', 'epoch_3.pth'])
