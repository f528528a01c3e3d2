"""Every config under configs/ builds on generated data and trains."""
import math

import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS

from mmcal_test_utils import StopAfterFirstEpoch
from mmcal.runtime.runner import DATALOADERS, load_config

from .conftest import all_configs, dataloader_overrides

MIXING_PREFIX = 'configs/mixing/'
# Input pixels per attention-map cell: the bird project's plain ResNet-152
# and the paper's stride-16 ResNet-101.
OUTPUT_STRIDES = {
    'configs/cal_r152_birds.py': 32,
    'configs/cal_r101_cub_448.py': 16,
}
RECIPES = [path for path in all_configs()
           if not path.startswith(MIXING_PREFIX)]


def test_configs_are_found():
    assert 'configs/cal_r152_birds.py' in RECIPES
    assert 'configs/cal_r101_cub_448.py' in RECIPES
    assert len(all_configs()) - len(RECIPES) >= 2


@pytest.mark.parametrize('config', all_configs())
def test_datasets_build_on_generated_data(config, data_roots):
    cfg = load_config(config)
    cfg.merge_from_dict(dataloader_overrides(cfg, data_roots))
    for loader in DATALOADERS:
        if cfg.get(loader) is None:  # a final recipe without validation
            continue
        dataset = DATASETS.build(cfg[loader].dataset)
        assert len(dataset) > 0, f'{config}: {loader} is empty'
        sample = dataset[0]
        assert tuple(sample['inputs'].shape) == (3, 64, 64), (config, loader)
        assert 0 <= sample['data_samples'].gt_label.item() < len(
            dataset.metainfo['classes'])


@pytest.mark.parametrize('config', all_configs())
def test_every_config_reads_with_a_checked_reader(config):
    """mmpretrain's parsers (CUB, FGVCAircraft, StanfordCars) accept
    duplicate ids and unknown split values silently: no shipped config
    may use them."""
    cfg = load_config(config)
    types = {
        cfg[loader].dataset.type for loader in DATALOADERS if cfg[loader]
    }
    assert types <= {'CheckedCUB', 'CUBFolder', 'BirdSet', 'NABirds',
                     'CheckedFGVCAircraft', 'CheckedStanfordCars'}, (
                         config, types)


@pytest.mark.parametrize('config', RECIPES)
def test_recipe_trains_two_iterations_and_tests(config, data_roots,
                                                tmp_path):
    """The full model (pretrained init off), 64 px, batch 2: one epoch of
    the generated data is 2 training iterations; then testing with the
    config's test views."""
    cfg = load_config(config)
    cfg.merge_from_dict(dataloader_overrides(cfg, data_roots))
    cfg.model.backbone.init_cfg = None
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    # A checkpoint of the big models would only cost time and disk here.
    cfg.default_hooks.checkpoint = None
    runner = Runner.from_cfg(cfg)
    runner.register_hook(StopAfterFirstEpoch())
    runner.train()
    # One epoch: 2 iterations, 5 for the final bird recipe's trainval.
    assert runner.iter == len(runner.train_dataloader) in (2, 5)
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss)
    metrics = runner.test()
    assert 0 <= metrics['accuracy/top1'] <= 100
    if config in OUTPUT_STRIDES:
        with torch.no_grad():
            maps = runner.model.get_attention_maps(torch.zeros(1, 3, 64, 64))
        side = 64 // OUTPUT_STRIDES[config]
        assert maps.shape == (1, cfg.model.neck.num_attentions, side, side)
