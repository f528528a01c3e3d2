"""The batched attention functions against plain per-sample loops."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmcal.models.utils import (attention_crop, attention_crop_boxes,
                                attention_drop, bilinear_attention_pool,
                                sample_guide_maps)
from mmcal.models.utils.attention_ops import crop_and_resize
from mmcal.testing.reference_ops import (embedding_bag_crop, loop_bap,
                                         reference_crop, reference_drop)


def test_bilinear_attention_pool_matches_loop():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 4, 5)
    attention = torch.rand(2, 2, 4, 5)
    pooled = bilinear_attention_pool(features, attention)
    assert pooled.shape == (2, 6)
    assert pooled.dtype == torch.float32
    torch.testing.assert_close(
        pooled.double(), loop_bap(features, attention), atol=1e-6, rtol=1e-5)
    # L2 over the whole M * C vector of each sample.
    torch.testing.assert_close(pooled.norm(dim=1), torch.ones(2))


def test_bilinear_attention_pool_hand_value():
    # One sample, one part, one channel: f = mean(A * F) = (1*4 + 0*9) / 2
    # = 2 -> sqrt(2 + 1e-6), then L2 over a single value gives 1; with two
    # channels of opposite sign the signed sqrt keeps the signs.
    features = torch.tensor([[[[4.0, 9.0]], [[-4.0, -9.0]]]])
    attention = torch.tensor([[[[1.0, 0.0]]]])
    pooled = bilinear_attention_pool(features, attention)
    expected = torch.tensor([[1.0, -1.0]]) / math.sqrt(2)
    torch.testing.assert_close(pooled, expected)
    # A small value: sqrt(|f| + 1e-6) with f = (1e-6 * 1 + 0) / 2.
    pooled = bilinear_attention_pool(features * 1e-6 / 4, attention)
    torch.testing.assert_close(pooled, expected)
    pooled = bilinear_attention_pool(
        torch.tensor([[[[1e-6, 0.0]], [[2.0, 0.0]]]]), attention)
    small, large = math.sqrt(0.5e-6 + 1e-6), math.sqrt(1.0 + 1e-6)
    norm = math.hypot(small, large)
    torch.testing.assert_close(pooled,
                               torch.tensor([[small / norm, large / norm]]))
    # sign(0) = 0: an all-zero part stays zero (and the norm of a zero
    # vector does not divide by zero).
    zero = bilinear_attention_pool(features, torch.zeros(1, 1, 1, 2))
    assert torch.equal(zero, torch.zeros(1, 2))


def test_bilinear_attention_pool_resizes_attention():
    torch.manual_seed(1)
    features = torch.randn(2, 3, 6, 4)
    attention = torch.rand(2, 2, 3, 2)
    # The reference resizes with F.upsample_bilinear: corners aligned.
    resized = F.interpolate(
        attention, size=(6, 4), mode='bilinear', align_corners=True)
    torch.testing.assert_close(
        bilinear_attention_pool(features, attention).double(),
        loop_bap(features, resized),
        atol=1e-6,
        rtol=1e-5)


def test_bilinear_attention_pool_float32_under_autocast():
    torch.manual_seed(2)
    features = torch.randn(2, 8, 4, 4)
    attention = torch.rand(2, 3, 4, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        pooled = bilinear_attention_pool(features.bfloat16(),
                                         attention.bfloat16())
    assert pooled.dtype == torch.float32
    expected = loop_bap(features.bfloat16().float(),
                        attention.bfloat16().float())
    torch.testing.assert_close(pooled.double(), expected, atol=1e-6, rtol=1e-5)


def test_bilinear_attention_pool_rejects_wrong_dims():
    with pytest.raises(ValueError, match='4-d'):
        bilinear_attention_pool(torch.zeros(2, 3, 4), torch.zeros(2, 1, 4, 4))


# ----------------------------------------------------------------------------
# Crop and drop


def peaked_maps(batch, size, generator):
    """Maps with one sharp peak each, at random places incl. the borders."""
    h, w = size
    maps = torch.rand(batch, 1, h, w, generator=generator) * 0.05
    rows = torch.randint(0, h, (batch, ), generator=generator)
    cols = torch.randint(0, w, (batch, ), generator=generator)
    rows[0], cols[0] = 0, 0  # top-left corner
    if batch > 1:
        rows[1], cols[1] = h - 1, w - 1  # bottom-right corner
    maps[torch.arange(batch), 0, rows, cols] = 1.0
    return maps


def border_maps(batch, size):
    """Maps whose attended region touches one image border each."""
    h, w = size
    maps = torch.zeros(batch, 1, h, w)
    for i in range(batch):
        side = i % 4
        if side == 0:
            maps[i, 0, 0, :] = 1
        elif side == 1:
            maps[i, 0, -1, :] = 1
        elif side == 2:
            maps[i, 0, :, 0] = 1
        else:
            maps[i, 0, :, -1] = 1
    return maps


MAP_KINDS = ['random', 'peaked', 'border']


def make_maps(kind, batch, size, generator):
    if kind == 'random':
        return torch.rand(batch, 1, *size, generator=generator)**3
    if kind == 'peaked':
        return peaked_maps(batch, size, generator)
    return border_maps(batch, size)


@pytest.mark.parametrize('kind', MAP_KINDS)
@pytest.mark.parametrize('image_size,map_size', [((32, 32), (4, 4)),
                                                 ((40, 24), (5, 3)),
                                                 ((23, 37), (7, 6)),
                                                 ((224, 224), (14, 14))])
@pytest.mark.parametrize('theta_as_tensor', [False, True])
def test_crop_matches_reference_loop(kind, image_size, map_size,
                                     theta_as_tensor):
    generator = torch.Generator().manual_seed(
        MAP_KINDS.index(kind) * 1000 + image_size[0])
    batch = 6
    images = torch.randn(batch, 3, *image_size, generator=generator)
    maps = make_maps(kind, batch, map_size, generator)
    if theta_as_tensor:
        theta = 0.3 + 0.4 * torch.rand(batch, generator=generator)
    else:
        theta = 0.5
    thetas = theta if theta_as_tensor else [theta] * batch
    for padding in (0.0, 0.1, 0.05):
        boxes, crops = reference_crop(images, maps, thetas, padding)
        got_boxes = attention_crop_boxes(maps, image_size, theta, padding)
        assert got_boxes.dtype == torch.int64
        assert torch.equal(got_boxes, boxes), (padding, got_boxes, boxes)
        got = attention_crop(images, maps, theta, padding)
        assert got.shape == images.shape
        torch.testing.assert_close(got, crops, atol=1e-5, rtol=0)


@pytest.mark.parametrize('kind', MAP_KINDS)
@pytest.mark.parametrize('theta_as_tensor', [False, True])
def test_drop_matches_reference_loop(kind, theta_as_tensor):
    generator = torch.Generator().manual_seed(7)
    batch, image_size = 5, (30, 22)
    images = torch.randn(batch, 3, *image_size, generator=generator)
    maps = make_maps(kind, batch, (5, 4), generator)
    theta = (torch.rand(batch, generator=generator)
             if theta_as_tensor else 0.35)
    thetas = theta if theta_as_tensor else [theta] * batch
    got = attention_drop(images, maps, theta)
    expected = reference_drop(images, maps, thetas)
    assert torch.equal(got, expected)
    # Something was dropped, something kept.
    assert (got == 0).any() and (got != 0).any()


def test_crop_box_hand_value():
    # A 2x2 map upsampled to 11x11 with corners aligned: only pixel (0, 0)
    # of the map is hot, so the upsampled value at (i, j) is
    # (1 - i/10) * (1 - j/10); theta 0.5 keeps (1-i/10)(1-j/10) >= 0.5,
    # i.e. rows/cols 0..5 (i=5, j=0: 0.5). Padding 0.1 * 11 = 1.1:
    # bottom = int(5 + 1.1) = 6, right = 6, top = max(int(0 - 1.1), 0) = 0,
    # as (x1, y1, x2, y2) with exclusive ends.
    guide = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    boxes = attention_crop_boxes(guide, (11, 11), 0.5, 0.1)
    assert boxes.tolist() == [[0, 0, 6, 6]]
    # int() truncates toward zero: a negative top of -1.1 becomes -1 -> 0,
    # and with a hot centre pixel the box is symmetric.
    guide = torch.zeros(1, 1, 3, 3)
    guide[0, 0, 1, 1] = 1.0
    # Upsampled to 21x21: row 10 is the peak, value 1 - |i-10|/10; >= 0.75
    # for rows 8..12. Padding 0.1 * 21 = 2.1: top int(8-2.1)=5,
    # bottom int(12+2.1)=14; the same for the columns.
    boxes = attention_crop_boxes(guide, (21, 21), 0.75, 0.1)
    assert boxes.tolist() == [[5, 5, 14, 14]]


def test_crop_one_pixel_mask_without_padding():
    # Only the centre pixel reaches theta 1 (3 -> 9 px, corners aligned:
    # map pixel (1, 1) lands on (4, 4)). Unpadded, the reference's
    # exclusive end would equal the start and its slice be empty; the box
    # keeps that one row and column, so the crop is that pixel everywhere.
    guide = torch.zeros(1, 1, 3, 3)
    guide[0, 0, 1, 1] = 1.0
    images = torch.randn(1, 3, 9, 9)
    assert attention_crop_boxes(guide, (9, 9), 1.0, 0.0).tolist() == [
        [4, 4, 5, 5]
    ]
    crops = attention_crop(images, guide, 1.0, 0.0)
    assert torch.equal(crops, images[:, :, 4:5, 4:5].expand_as(images))


@pytest.mark.parametrize(
    'name,guide',
    [('nan', torch.full((1, 1, 4, 4), float('nan'))),
     ('constant', torch.full((1, 1, 4, 4), 0.7)),
     ('zeros', torch.zeros(1, 1, 4, 4))])
def test_crop_degenerate_maps_give_whole_image(name, guide):
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(1, 3, 16, 20, generator=generator)
    boxes = attention_crop_boxes(guide, (16, 20), 0.5, 0.1)
    assert boxes.tolist() == [[0, 0, 20, 16]], name
    torch.testing.assert_close(
        attention_crop(images, guide, 0.5, 0.1), images, atol=1e-5, rtol=0)


def test_crop_empty_mask_in_a_batch_only_affects_that_sample():
    generator = torch.Generator().manual_seed(4)
    images = torch.randn(3, 3, 24, 24, generator=generator)
    maps = peaked_maps(3, (4, 4), generator)
    maps[1] = float('nan')
    boxes = attention_crop_boxes(maps, (24, 24), 0.5, 0.0)
    assert boxes[1].tolist() == [0, 0, 24, 24]
    ref_boxes, ref_crops = reference_crop(images, maps, [0.5] * 3, 0.0)
    assert torch.equal(boxes, ref_boxes)
    torch.testing.assert_close(
        attention_crop(images, maps, 0.5, 0.0), ref_crops, atol=1e-5, rtol=0)


def test_drop_degenerate_maps():
    images = torch.randn(2, 3, 9, 9)
    # All-zero map: 0 < 0 is False everywhere, so the whole image is dropped
    # (as in the reference); a NaN map compares False too.
    assert torch.equal(
        attention_drop(images, torch.zeros(2, 1, 2, 2), 0.5),
        torch.zeros_like(images))
    # A map with one hot pixel and theta 1 drops exactly the pixels equal
    # to the maximum.
    guide = torch.zeros(2, 1, 3, 3)
    guide[:, 0, 1, 1] = 1.0
    dropped = attention_drop(images, guide, 1.0)
    expected = images.clone()
    expected[:, :, 4, 4] = 0  # 3 -> 9 px corners aligned: centre at 4
    assert torch.equal(dropped, expected)


def test_batch_of_one():
    generator = torch.Generator().manual_seed(5)
    images = torch.randn(1, 3, 28, 28, generator=generator)
    guide = peaked_maps(1, (7, 7), generator)
    _, crops = reference_crop(images, guide, [0.4], 0.1)
    torch.testing.assert_close(
        attention_crop(images, guide, torch.tensor([0.4]), 0.1),
        crops,
        atol=1e-5,
        rtol=0)
    torch.testing.assert_close(
        attention_drop(images, guide, 0.4),
        reference_drop(images, guide, [0.4]))


def test_theta_of_wrong_shape_raises():
    with pytest.raises(ValueError, match=r'\(2,\) tensor'):
        attention_crop_boxes(
            torch.rand(2, 1, 3, 3), (8, 8), torch.rand(3), 0.1)
    with pytest.raises(ValueError, match=r'\(B, 1, h, w\)'):
        attention_drop(torch.rand(2, 3, 8, 8), torch.rand(2, 2, 3, 3), 0.5)


def test_crop_pixels_equal_the_embedding_bag_kernel_bit_for_bit():
    # The exportable gather + addcmul_ gives the very pixels of the fused
    # embedding_bag sum it replaced.
    generator = torch.Generator().manual_seed(6)
    for height, width in ((40, 24), (23, 37), (64, 64)):
        images = torch.randn(4, 3, height, width, generator=generator)
        corners = torch.stack([
            torch.randint(0, size, (2, 4), generator=generator).sort(
                dim=0).values for size in (height, width)
        ])  # (2 axes, start / stop, B)
        # (x1, y1, x2, y2), exclusive ends.
        boxes = torch.stack([
            corners[1, 0], corners[0, 0], corners[1, 1] + 1,
            corners[0, 1] + 1
        ], dim=1)
        assert torch.equal(
            crop_and_resize(images, boxes), embedding_bag_crop(images, boxes))


def test_crop_keeps_dtype():
    images = torch.randn(2, 3, 16, 16).to(torch.bfloat16)
    crops = attention_crop(images, torch.rand(2, 1, 4, 4), 0.5, 0.1)
    assert crops.dtype == torch.bfloat16


# ----------------------------------------------------------------------------
# Guide map sampling.


def test_sample_guide_maps_follows_sqrt_sum_weights():
    torch.manual_seed(0)
    # Map m of the sample is constant c_m: sum over 2x3 = 6 c_m.
    levels = torch.tensor([0.0, 1.0, 4.0, 9.0])
    maps = levels[None, :, None, None].expand(1, 4, 2, 3).contiguous()
    maps = maps.repeat(2000, 1, 1, 1)
    drawn = sample_guide_maps(maps, num_samples=2)
    assert drawn.shape == (2000, 2, 2, 3)
    assert not drawn.requires_grad
    # Recover which map was drawn from its value.
    indices = (drawn[:, :, 0, 0, None] == levels).float().argmax(dim=-1)
    counts = torch.bincount(indices.flatten(), minlength=4).double()
    weights = [math.sqrt(6 * level + 1e-6) for level in levels.tolist()]
    probabilities = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    draws = counts.sum()
    expected = probabilities * draws
    # Chi-square test of the counts of the three non-zero maps, and the zero
    # map drawn about as often as its tiny weight says (a ~1e-4 chance).
    chi2 = (((counts[1:] - expected[1:])**2) / expected[1:]).sum()
    assert chi2 < 13.8  # p = 0.001 with 2 degrees of freedom
    assert counts[0] <= 3


def test_sample_guide_maps_draws_a_zero_map():
    # A zero map keeps weight sqrt(1e-6): next to a map summing to 1e-6
    # (weight sqrt(2e-6)) it is drawn with probability 1 / (1 + sqrt(2)).
    torch.manual_seed(1)
    maps = torch.zeros(3000, 2, 1, 1)
    maps[:, 1] = 1e-6
    drawn = sample_guide_maps(maps, num_samples=1)
    fraction_zero = (drawn == 0).double().mean().item()
    assert abs(fraction_zero - 1 / (1 + math.sqrt(2))) < 0.04
    # All maps zero: a uniform draw instead of a failure.
    drawn = sample_guide_maps(torch.zeros(5, 3, 2, 2), num_samples=2)
    assert drawn.shape == (5, 2, 2, 2)


def test_sample_guide_maps_keeps_the_drawn_maps_whole():
    torch.manual_seed(2)
    maps = torch.rand(6, 5, 3, 4)
    drawn = sample_guide_maps(maps, num_samples=2)
    for b in range(6):
        for k in range(2):
            assert any(
                torch.equal(drawn[b, k], maps[b, m]) for m in range(5))
