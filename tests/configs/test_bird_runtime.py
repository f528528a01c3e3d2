"""The bird recipe's validation, plateau schedule and best checkpoint, run
with the tiny model in place of ResNet-152."""
import os

import pytest

from mmcal_test_utils import tiny_model_cfg
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmcal.runtime.runner import load_config

from .conftest import GENERATED_CLASSES, dataloader_overrides


class RecordValTop1(Hook):

    def __init__(self):
        self.top1 = []

    def after_val_epoch(self, runner, metrics=None):
        self.top1.append(metrics['accuracy/top1'])


def tiny_recipe(config, data_roots, work_dir, max_epochs):
    """A bird recipe on the generated data with the tiny model and its own
    (top-level) preprocessor: the bird set's mean/std."""
    cfg = load_config(config)
    cfg.merge_from_dict(dataloader_overrides(cfg, data_roots))
    model = tiny_model_cfg(num_classes=GENERATED_CLASSES)
    model.pop('data_preprocessor')
    cfg.model = model
    cfg.train_cfg.max_epochs = max_epochs
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    return cfg


def test_bird_recipe_keeps_best_checkpoint_and_plateau_reads_top1(
        data_roots, tmp_path):
    cfg = tiny_recipe('configs/cal_r152_birds.py', data_roots, tmp_path, 3)
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


def test_bird_final_recipe_trains_on_all_labelled_images_without_val(
        data_roots, tmp_path):
    cfg = tiny_recipe('configs/cal_r152_birds_trainval.py', data_roots,
                      tmp_path, 2)
    cfg.param_scheduler.milestones = [1]
    runner = Runner.from_cfg(cfg)
    runner.train()

    # 2 classes x 5 labelled images: the validated recipe trains on 2 of
    # each (3 held out), this one on all of them.
    with open(f'{data_roots["birds"]}/training_labels.txt') as file:
        labelled = sum(1 for line in file if line.strip())
    assert len(runner.train_dataloader.dataset) == labelled == 10
    assert runner.val_loop is None
    # The lr cut replayed at the fixed epoch.
    lr = runner.optim_wrapper.get_lr()['lr'][0]
    assert lr == pytest.approx(1e-3 * 0.1)
    assert sorted(name for name in os.listdir(tmp_path)
                  if name.endswith('.pth')) == ['epoch_1.pth', 'epoch_2.pth']
