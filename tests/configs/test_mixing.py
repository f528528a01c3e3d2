"""mmpretrain's own configs switched to CAL train through tools/train.py."""
import importlib.util
import math
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from mmcal.runtime.runner import load_config

from .conftest import REPO_ROOT, all_configs, dataloader_overrides

MIXING = [path for path in all_configs() if path.startswith('configs/mixing/')]


def load_train_tool():
    path = osp.join(REPO_ROOT, 'tools', 'train.py')
    spec = importlib.util.spec_from_file_location('mmcal_train_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('config', MIXING)
def test_mixing_config_starts_from_mmpretrain_and_is_cal(config):
    cfg = load_config(config)
    with open(config) as file:
        assert "_base_ = 'mmpretrain::" in file.read()
    assert cfg.model.type == 'CALClassifier'
    assert cfg.model.neck.type == 'BAPNeck'
    assert cfg.model.head.type == 'CALHead'
    assert cfg.data_preprocessor.type == 'AttentionCropDrop'
    assert 'mmcal' in cfg.custom_imports.imports
    # mmpretrain's ImageNet weights would be downloaded: the test turns
    # them off.
    assert cfg.model.backbone.init_cfg.checkpoint.startswith('https://')


def train_two_iterations(config, data_roots, work_dir, monkeypatch,
                         **extra_options):
    """Train ``config`` for two iterations through tools/train.py, with
    ``extra_options`` added to its --cfg-options; the Runner it built."""
    cfg = load_config(config)
    # --no-validate removes the other loaders.
    options = dataloader_overrides(
        cfg, data_roots, loaders=('train_dataloader', ))
    options.update({
        'model.backbone.init_cfg': None,
        'train_cfg.max_epochs': 1,
        # Only the 2 iterations: no checkpoint of the big models.
        'default_hooks.checkpoint': None,
        'log_level': 'WARNING',
    })
    if cfg.model.backbone.type == 'SwinTransformer':
        # At 64 px the later stages are smaller than Swin's 12 x 12 window.
        options['model.backbone.pad_small_map'] = True
    options.update(extra_options)
    argv = [
        config, '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options'
    ] + [f'{key}={value}' for key, value in options.items()]

    # Keep the runner the tool builds, to inspect it after training.
    runners = []
    build_runner = Runner.from_cfg

    def from_cfg(cfg):
        runners.append(build_runner(cfg))
        return runners[-1]

    monkeypatch.setattr(Runner, 'from_cfg', from_cfg)
    load_train_tool().main(argv)

    runner, = runners
    assert type(runner.model).__name__ == 'CALClassifier'
    assert runner.iter == 2
    assert math.isfinite(
        runner.message_hub.get_scalar('train/loss').current())
    return runner


@pytest.mark.parametrize('config', MIXING)
def test_mixing_config_trains_two_iterations_through_train_tool(
        config, data_roots, tmp_path, monkeypatch):
    train_two_iterations(config, data_roots, tmp_path, monkeypatch)


def test_resnet50_mixing_config_trains_with_its_last_stage_kept_contiguous(
        data_roots, tmp_path, monkeypatch):
    # The README's CPU setting: channels_last, ResNet-50's layer4 in the
    # default layout, set from the command line.
    config = 'configs/mixing/cal_resnet50_8xb8_cub.py'
    assert config in MIXING
    options = {
        'data_preprocessor.channels_last': True,
        'model.contiguous_modules': '[backbone.layer4]',
    }
    if 'data_preprocessor' in load_config(config).model:
        options['model.data_preprocessor.channels_last'] = True
    model = train_two_iterations(config, data_roots, tmp_path, monkeypatch,
                                 **options).model
    assert model.data_preprocessor.channels_last
    for name, weight in model.named_parameters():
        if weight.dim() == 4 and weight.shape[-1] > 1:
            in_default = name.startswith('backbone.layer4.')
            assert weight.is_contiguous() == in_default, name
            assert weight.is_contiguous(
                memory_format=torch.channels_last) != in_default, name
