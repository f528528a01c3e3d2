"""mmpretrain's own configs switched to CAL, by the shipped configs and by
the README's lines, train through tools/train.py and test through
tools/test.py."""
import math
import os.path as osp
import re
from typing import NamedTuple

import pytest
import torch
from mmcal_test_utils import ROOT, StopAfterFirstEpoch, load_tool
from mmengine.runner import Runner

from mmcal.runtime.runner import load_config

from .conftest import GENERATED_CLASSES, all_configs, dataloader_overrides

MIXING = [path for path in all_configs() if path.startswith('configs/mixing/')]


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


def size_options(config, data_roots, loaders):
    """--cfg-options style overrides that point the ``loaders`` of
    ``config`` at the generated data and shrink it for the CPU."""
    cfg = load_config(config)
    options = dataloader_overrides(cfg, data_roots, loaders=loaders)
    options.update({
        'model.backbone.init_cfg': None,
        'log_level': 'WARNING',
    })
    if cfg.model.backbone.type == 'SwinTransformer':
        # At 64 px the later stages are smaller than Swin's 12 x 12 window.
        options['model.backbone.pad_small_map'] = True
    return options


def cfg_options(options):
    return ['--cfg-options'
            ] + [f'{key}={value}' for key, value in options.items()]


def train_two_iterations(config, data_roots, work_dir, monkeypatch,
                         keep_checkpoint=False, **extra_options):
    """Train ``config`` for two iterations through tools/train.py, with
    ``extra_options`` added to its --cfg-options; the Runner it built.
    Without ``keep_checkpoint`` no checkpoint of the big models."""
    # --no-validate removes the other loaders.
    options = size_options(config, data_roots, ('train_dataloader', ))
    if not keep_checkpoint:
        options['default_hooks.checkpoint'] = None
    options.update(extra_options)
    argv = [config, '--work-dir', str(work_dir), '--no-validate'
            ] + cfg_options(options)

    # Keep the runner the tool builds, to inspect it after training; one
    # epoch of the base's schedule.
    runners = []
    build_runner = Runner.from_cfg

    def from_cfg(cfg):
        runners.append(build_runner(cfg))
        runners[-1].register_hook(StopAfterFirstEpoch())
        return runners[-1]

    monkeypatch.setattr(Runner, 'from_cfg', from_cfg)
    load_tool('train.py').main(argv)

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


README_SECTION = '## Use CAL from any mmpretrain config'


def readme_mixing_block():
    """The README's mixing lines: the first python block of its section."""
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as file:
        readme = file.read()
    section = readme.split(README_SECTION, 1)[1].split('\n## ', 1)[0]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def with_value(block, pattern, value):
    """``block`` with the one match of ``pattern`` replaced by ``value``."""
    block, count = re.subn(pattern, value, block)
    assert count == 1, f'the README block must state {pattern} once'
    return block


class Family(NamedTuple):
    base: str  # an mmpretrain config
    channels: int  # of the backbone's last feature map
    size: dict = {}  # --cfg-options of a smaller arch
    # What CALClassifier's error asks to add to model.backbone.
    feature_map_option: str = ''
    train_size: dict = {}  # --cfg-options of shorter training hooks


# Swin at 8 x 32 channels: ``arch`` is a name in the base, replaced whole.
SWIN_ARCH = {
    'model.backbone.arch._delete_': True,
    'model.backbone.arch.embed_dims': 32,
    'model.backbone.arch.depths': [1, 1, 1, 1],
    'model.backbone.arch.num_heads': [1, 1, 1, 1],
}
# mmpretrain's ImageNet configs of several families: without a neck
# (ConvNeXt), with Mixup/CutMix (ConvNeXt, Swin, DeiT), ViT-like (DeiT).
FAMILIES = [
    Family('resnet/resnet18_8xb32_in1k.py', 512),
    Family('convnext/convnext-tiny_32xb128_in1k.py', 320,
           {'model.backbone.arch': 'atto'}, 'gap_before_final_norm=False'),
    Family('efficientnet/efficientnet-b0_8xb32_in1k.py', 1280),
    Family('mobilenet_v2/mobilenet-v2_8xb32_in1k.py', 1280),
    Family('regnet/regnetx-400mf_8xb128_in1k.py', 384,
           train_size={'custom_hooks.0.num_samples': 4}),
    Family('repvgg/repvgg-A0_8xb32_in1k.py', 1280),
    Family('resnext/resnext50-32x4d_8xb32_in1k.py', 512, {
        'model.backbone.base_channels': 16,
        'model.backbone.stem_channels': 16
    }),
    Family('swin_transformer/swin-tiny_16xb64_in1k.py', 256, SWIN_ARCH),
    Family('deit/deit-tiny_4xb256_in1k.py', 192, {}, "out_type='featmap'"),
]


@pytest.mark.parametrize(
    'family', FAMILIES, ids=[family.base.split('/')[0] for family in FAMILIES])
def test_readme_mixing_block_trains_and_tests_mmpretrain_configs(
        family, data_roots, tmp_path, monkeypatch):
    """The README's lines as written, but for the base, the channels and
    the class count, over mmpretrain's own configs, through the tools."""
    block = readme_mixing_block()
    block = with_value(block, r"_base_ = '[^']*'",
                       f"_base_ = 'mmpretrain::{family.base}'")
    block = with_value(block, r'in_channels=\d+',
                       f'in_channels={family.channels}')
    block = with_value(block, r'num_classes=\d+',
                       f'num_classes={GENERATED_CLASSES}')
    config = str(tmp_path / 'cal.py')
    with open(config, 'w') as file:
        file.write(block)
    options = dict(family.size)
    if family.feature_map_option:
        # The error names the option; the run then adds it as written.
        with pytest.raises(ValueError) as error:
            train_two_iterations(config, data_roots, tmp_path / 'refused',
                                 monkeypatch, **options,
                                 **family.train_size)
        named = re.search(r'set model\.backbone\.(\S+)$', str(error.value))
        assert named, error.value
        option = named.group(1)
        assert option == family.feature_map_option
        key, value = option.split('=')
        options[f'model.backbone.{key}'] = value

    work_dir = tmp_path / 'work'
    model = train_two_iterations(config, data_roots, work_dir, monkeypatch,
                                 keep_checkpoint=True, **options,
                                 **family.train_size).model
    assert model.neck.in_channels == family.channels
    assert model.data_preprocessor.batch_augments is None

    test_options = size_options(config, data_roots, ('test_dataloader', ))
    metrics = load_tool('test.py').main(
        [config, str(work_dir / 'epoch_1.pth'), '--work-dir',
         str(tmp_path / 'test')] + cfg_options({**test_options, **options}))
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_mixing_block_over_batch_augments_names_the_line_that_removes_them(
        data_roots, tmp_path, monkeypatch):
    """Without the README's ``train_cfg=None``, a base with Mixup/CutMix
    is refused with that line."""
    block = with_value(readme_mixing_block(), r',\s*train_cfg=None\)', ')')
    block = with_value(block, r"_base_ = '[^']*'",
                       "_base_ = 'mmpretrain::resnet/resnet50_8xb256-rsb-a1"
                       "-600e_in1k.py'")
    config = str(tmp_path / 'cal.py')
    with open(config, 'w') as file:
        file.write(block)
    with pytest.raises(ValueError, match=r'does not support batch augments'
                       r".*'Mixup'.*'CutMix'.*model\.train_cfg=None"):
        train_two_iterations(config, data_roots, tmp_path / 'work',
                             monkeypatch)
