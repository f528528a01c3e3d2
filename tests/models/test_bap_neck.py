"""BAPNeck: attention layer, pooling and counterfactual attention."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from mmcal.testing.reference_ops import loop_bap


def build_neck(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='BAPNeck', in_channels=6, num_attentions=3)
    return MODELS.build({**cfg, **kwargs})


def test_attention_layer_structure():
    neck = build_neck()
    conv, bn, relu = neck.attention
    assert isinstance(conv, nn.Conv2d) and conv.bias is None
    assert conv.kernel_size == (1, 1)
    assert (conv.in_channels, conv.out_channels) == (6, 3)
    assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-3
    assert isinstance(relu, nn.ReLU)


def test_forward_matches_loop_in_eval():
    neck = build_neck().eval()
    features = torch.randn(2, 6, 3, 4)
    parts, counterfactual, maps = neck((features, ))
    assert maps.shape == (2, 3, 3, 4)
    assert parts.shape == counterfactual.shape == (2, 18)
    # The attention maps by hand: 1x1 conv, eval BatchNorm, ReLU.
    conv, bn = neck.attention[0], neck.attention[1]
    linear = torch.einsum('mc,bchw->bmhw', conv.weight[:, :, 0, 0], features)
    normed = (linear - bn.running_mean[:, None, None]) / torch.sqrt(
        bn.running_var[:, None, None] + 1e-3)
    normed = normed * bn.weight[:, None, None] + bn.bias[:, None, None]
    torch.testing.assert_close(maps, normed.clamp(min=0))
    torch.testing.assert_close(
        parts.double(), loop_bap(features, maps.detach()), atol=1e-6,
        rtol=1e-5)
    # Evaluation: all-ones counterfactual attention, every part equal to
    # global average pooling.
    torch.testing.assert_close(
        counterfactual.double(),
        loop_bap(features, torch.ones(2, 3, 3, 4)),
        atol=1e-6,
        rtol=1e-5)


def test_random_counterfactual_in_training():
    neck = build_neck().train()
    features = torch.randn(2, 6, 3, 4)
    maps = torch.rand(2, 3, 3, 4)
    first = neck.counterfactual_maps(maps)
    second = neck.counterfactual_maps(maps)
    assert first.shape == maps.shape and first.dtype == torch.float32
    assert not torch.equal(first, second)
    many = neck.counterfactual_maps(torch.zeros(64, 3, 16, 16))
    assert many.min() >= 0 and many.max() < 2
    # Uniform(0, 2): mean 1, variance 1/3.
    assert abs(many.mean().item() - 1) < 0.02
    assert abs(many.var().item() - 1 / 3) < 0.02
    # forward pools under exactly those fake maps (the first random draw).
    torch.manual_seed(5)
    fake = neck.counterfactual_maps(maps)
    torch.manual_seed(5)
    _, counterfactual, _ = neck(features)
    torch.testing.assert_close(
        counterfactual.double(), loop_bap(features, fake), atol=1e-6,
        rtol=1e-5)
    _, again, _ = neck(features)
    assert not torch.allclose(counterfactual, again)


def test_random_counterfactual_is_ones_in_eval():
    neck = build_neck().eval()
    maps = torch.rand(2, 3, 3, 4)
    assert torch.equal(neck.counterfactual_maps(maps), torch.ones_like(maps))


def test_uniform_counterfactual_is_ones_in_both_modes():
    neck = build_neck(counterfactual='uniform')
    maps = torch.rand(2, 3, 3, 4)
    for training in (True, False):
        neck.train(training)
        assert torch.equal(neck.counterfactual_maps(maps),
                           torch.ones_like(maps))


def test_pooling_is_float32_under_autocast():
    neck = build_neck().train()
    features = torch.randn(2, 6, 3, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        parts, counterfactual, maps = neck(features)
    assert maps.dtype == torch.bfloat16
    assert parts.dtype == counterfactual.dtype == torch.float32
    torch.testing.assert_close(
        parts.double(), loop_bap(features, maps.float().detach()),
        atol=1e-6, rtol=1e-5)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="counterfactual.*'zeros'"):
        build_neck(counterfactual='zeros')
    neck = build_neck()
    with pytest.raises(ValueError, match='in_channels=6.*5 channels'):
        neck(torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match="out_type='featmap'"):
        neck(torch.randn(2, 6, 9))
