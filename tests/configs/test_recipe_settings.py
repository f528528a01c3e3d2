"""The recipes' learning-rate schedules, augmentation and BatchNorm
synchronisation behave as the reference describes."""
import glob
import json
import math
import os.path as osp
import re
from types import SimpleNamespace

import mmcv
import numpy as np
import pytest
import torch
from mmcal_test_utils import load_tool, tiny_model_cfg
from mmengine.logging import MMLogger
from mmengine.model import convert_sync_batchnorm
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.runner import Runner
from mmpretrain.registry import MODELS, PARAM_SCHEDULERS, TRANSFORMS

from mmcal.runtime.runner import load_config

from .conftest import all_configs, dataloader_overrides

CUB_CONFIG = 'configs/cal_r101_cub_448.py'
BIRDS_CONFIG = 'configs/cal_r152_birds.py'
SYNTHETIC_CONFIG = 'configs/cal_r18_synthetic-birds.py'


def sgd_wrapper(lr):
    return OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                        lr=lr))


def test_cub_lr_decays_by_0_9_every_two_epochs_at_every_iteration():
    cfg = load_config(CUB_CONFIG)
    wrapper = sgd_wrapper(cfg.optim_wrapper.optimizer.lr)
    epoch_length = 7
    scheduler = PARAM_SCHEDULERS.build(
        dict(cfg.param_scheduler),
        default_args=dict(optimizer=wrapper, epoch_length=epoch_length))
    num_iters = cfg.train_cfg.max_epochs * epoch_length
    for iteration in range(num_iters):
        epoch = iteration / epoch_length
        expected = 1e-3 * 0.9**(epoch / 2)
        assert math.isclose(wrapper.get_lr()['lr'][0], expected,
                            rel_tol=1e-6), iteration
        scheduler.step()
    # Two epochs in: exactly one factor 0.9; the last lr of 160 epochs.
    assert math.isclose(1e-3 * 0.9**(14 / 7 / 2), 0.9e-3)
    assert math.isclose(wrapper.get_lr()['lr'][0], 1e-3 * 0.9**80,
                        rel_tol=1e-6)


def scaled_lr(cfg, processes, batch_per_process):
    """The lr mmengine's Runner trains with under ``--auto-scale-lr``."""
    wrapper = sgd_wrapper(cfg.optim_wrapper.optimizer.lr)
    runner = SimpleNamespace(
        _train_dataloader=dict(batch_size=batch_per_process),
        world_size=processes,
        param_schedulers=None,
        logger=MMLogger.get_current_instance())
    Runner.scale_lr(runner, wrapper, dict(cfg.auto_scale_lr, enable=True))
    return wrapper.get_lr()['lr'][0]


def test_cub_lr_is_1e3_for_a_global_batch_of_16():
    cfg = load_config(CUB_CONFIG)
    assert cfg.train_dataloader.batch_size == 4
    assert math.isclose(scaled_lr(cfg, 4, 4), 1e-3)
    assert math.isclose(scaled_lr(cfg, 1, 4), 2.5e-4)
    assert math.isclose(scaled_lr(cfg, 2, 16), 2e-3)


# Processes of the recipes whose names do not say it (mmpretrain's name
# it: 8xb8 is 8 processes of 8 images); the others train on one.
RECIPE_PROCESSES = {CUB_CONFIG: 4, 'configs/cal_r101_nabirds_448.py': 4}


@pytest.mark.parametrize('config', all_configs())
def test_every_config_declares_the_batch_its_lr_is_set_for(config):
    """``tools/train.py --auto-scale-lr`` needs ``auto_scale_lr``: its
    base batch is the recipe's global batch."""
    tool = load_tool('train.py')
    cfg = tool.build_config(tool.parse_args([config, '--auto-scale-lr']))
    assert cfg.auto_scale_lr.enable is True
    batch_size = cfg.train_dataloader.batch_size
    named = re.search(r'_(\d+)xb(\d+)_', osp.basename(config))
    if named:
        assert batch_size == int(named[2])
        processes = int(named[1])
    else:
        processes = RECIPE_PROCESSES.get(config, 1)
    assert cfg.auto_scale_lr.base_batch_size == batch_size * processes


def test_auto_scale_lr_without_a_base_batch_names_the_config(tmp_path):
    """A user's config with a schedule of its own, without the key."""
    runtime = osp.abspath('configs/_base_/default_runtime.py')
    config = tmp_path / 'own_schedule.py'
    config.write_text(f"_base_ = ['{runtime}']\n"
                      'train_dataloader = dict(batch_size=2)\n'
                      "optim_wrapper = dict(optimizer=dict(type='SGD', "
                      'lr=0.1))\n')
    tool = load_tool('train.py')
    with pytest.raises(KeyError, match='base_batch_size') as error:
        tool.build_config(tool.parse_args([str(config), '--auto-scale-lr']))
    assert str(config) in str(error.value)


# The generated data of tests/configs/conftest.py: 4 training images in
# batches of 2.
DEMO_BATCH = 2
DEMO_ITERS_PER_EPOCH = 2


def demo_lrs(data_roots, work_dir, *args):
    """Train the demo config with ``tools/train.py`` on the generated data
    (no validation) and return the lr of every iteration, from its log."""
    cfg = load_config(SYNTHETIC_CONFIG)
    options = dataloader_overrides(cfg, data_roots,
                                   batch_size=DEMO_BATCH,
                                   loaders=('train_dataloader', ))
    options['default_hooks.logger.interval'] = 1
    load_tool('train.py').main([
        SYNTHETIC_CONFIG, '--work-dir', str(work_dir), '--no-validate',
        *args, '--cfg-options',
        *(f'{key}={value}' for key, value in options.items())
    ])
    log, = [
        path for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                            '*.json'))
        if not path.endswith('scalars.json')
    ]
    with open(log) as file:
        records = [json.loads(line) for line in file]
    return [r['lr'] for r in sorted(records, key=lambda r: r['iter'])]


def demo_schedule(lr, iteration, num_iters):
    """The demo's schedule as configs/_base_/schedules/synthetic_birds_cpu.py
    states it: from lr / 10 linearly up to lr over the first epoch (over
    the first half of a shorter run), then a half cosine towards 0 at the
    end of the run."""
    warmup = min(DEMO_ITERS_PER_EPOCH, num_iters / 2)
    if iteration < warmup:
        return lr * (0.1 + 0.9 * iteration / warmup)
    return lr * (1 + math.cos(math.pi * (iteration - warmup) /
                              (num_iters - warmup))) / 2


@pytest.mark.parametrize('max_epochs', [1, 2, None])
def test_demo_schedule_follows_the_run_length(max_epochs, data_roots,
                                              tmp_path):
    cfg = load_config(SYNTHETIC_CONFIG)
    options = [] if max_epochs is None else [
        '--cfg-options', f'train_cfg.max_epochs={max_epochs}'
    ]
    lrs = demo_lrs(data_roots, tmp_path, *options)
    num_iters = (max_epochs or cfg.train_cfg.max_epochs) * \
        DEMO_ITERS_PER_EPOCH
    expected = [
        demo_schedule(cfg.optim_wrapper.optimizer.lr, iteration, num_iters)
        for iteration in range(num_iters)
    ]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_auto_scale_lr_scales_by_the_global_batch(data_roots, tmp_path):
    """One process of 2 images: mmengine's linear rule, lr * 2 / 16."""
    cfg = load_config(SYNTHETIC_CONFIG)
    lrs = demo_lrs(data_roots, tmp_path, '--auto-scale-lr', '--cfg-options',
                   'train_cfg.max_epochs=1')
    lr = cfg.optim_wrapper.optimizer.lr * DEMO_BATCH / \
        cfg.auto_scale_lr.base_batch_size
    assert lr < cfg.optim_wrapper.optimizer.lr
    assert lrs == pytest.approx([demo_schedule(lr, 0, 2),
                                 demo_schedule(lr, 1, 2)], rel=1e-9)


def test_bird_rotation_is_uniform_within_20_degrees(monkeypatch):
    cfg = load_config(BIRDS_CONFIG)
    rotate_cfg, = [t for t in cfg.train_dataloader.dataset.pipeline
                   if t.type == 'Rotate']
    rotate = TRANSFORMS.build(rotate_cfg)
    angles = []

    def record_angle(img, angle, **kwargs):
        angles.append(angle)
        return img

    monkeypatch.setattr(mmcv, 'imrotate', record_angle)
    np.random.seed(0)
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    draws = 4000
    for _ in range(draws):
        rotate.transform(dict(img=image))
    angles = np.array(angles)
    assert len(angles) == draws  # always rotated
    assert angles.min() >= -20 and angles.max() <= 20
    # Eight 5-degree bins hold 500 draws each (binomial sd 21).
    counts, _ = np.histogram(angles, bins=8, range=(-20, 20))
    assert np.all(np.abs(counts - draws / 8) < 80), counts


def test_cub_recipe_syncs_every_batchnorm_when_distributed():
    """The Runner applies ``sync_bn`` to the whole model, attention layer
    included, only when distributed; a single process keeps BatchNorm."""
    cfg = load_config(CUB_CONFIG)
    model = convert_sync_batchnorm(MODELS.build(tiny_model_cfg()),
                                   cfg.sync_bn)
    norms = {
        name: type(module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
    }
    assert 'neck.attention.1' in norms
    assert set(norms.values()) == {torch.nn.SyncBatchNorm}


def test_bird_resize_matches_pil_bilinear():
    """The bird project resized PIL images (torchvision): the recipe's
    Resize gives PIL's pixels, which OpenCV's bilinear does not."""
    from PIL import Image
    cfg = load_config(BIRDS_CONFIG)
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (500, 410, 3), dtype=np.uint8)
    expected = np.asarray(
        Image.fromarray(bgr[..., ::-1]).resize((324, 324),
                                               Image.BILINEAR))[..., ::-1]
    for loader in ('train_dataloader', 'test_dataloader'):
        resize, = [t for t in cfg[loader].dataset.pipeline
                   if t['type'] == 'Resize']
        out = TRANSFORMS.build(resize)(dict(img=bgr.copy()))['img']
        np.testing.assert_array_equal(out, expected)
    opencv = TRANSFORMS.build(dict(type='Resize', scale=(324, 324)))(
        dict(img=bgr.copy()))['img']
    assert np.abs(opencv.astype(int) - expected).max() > 10


@pytest.mark.parametrize('config',
                         [CUB_CONFIG, BIRDS_CONFIG, SYNTHETIC_CONFIG])
def test_recipe_sgd_makes_the_reference_update(config):
    """The recipes' fused SGD updates as SGD with momentum is written out
    (the reference's torch SGD): d = g + wd * p; buf = d on the first step,
    then buf = momentum * buf + d; p -= lr * buf. In float64, where the
    CUB recipe's weight decay (lr * wd * p, some 1e-9) is far above the
    rounding."""
    cfg = load_config(config)
    settings = cfg.optim_wrapper.optimizer
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3),
                                torch.nn.Linear(3, 2)).double()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert wrapper.optimizer.defaults['fused'] is True
    lr, momentum = settings.lr, settings.momentum
    weight_decay = settings.get('weight_decay', 0)
    generator = torch.Generator().manual_seed(0)
    expected = [p.detach().clone() for p in model.parameters()]
    buffers = [None] * len(expected)
    for _ in range(4):
        for index, parameter in enumerate(model.parameters()):
            grad = torch.randn(
                parameter.shape, generator=generator, dtype=torch.float64)
            parameter.grad = grad
            step = grad + weight_decay * expected[index]
            buffers[index] = step if buffers[index] is None else (
                momentum * buffers[index] + step)
            expected[index] -= lr * buffers[index]
        wrapper.step()
    for parameter, value in zip(model.parameters(), expected):
        torch.testing.assert_close(
            parameter.detach(), value, rtol=1e-13, atol=1e-15)
