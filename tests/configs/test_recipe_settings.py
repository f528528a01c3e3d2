"""The recipes' learning-rate schedules, augmentation and BatchNorm
synchronisation behave as the reference describes."""
import math
from types import SimpleNamespace

import mmcv
import numpy as np
import pytest
import torch
from mmcal_test_utils import tiny_model_cfg
from mmengine.logging import MMLogger
from mmengine.model import convert_sync_batchnorm
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.runner import Runner
from mmpretrain.registry import MODELS, PARAM_SCHEDULERS, TRANSFORMS

from mmcal.runtime.runner import load_config

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
