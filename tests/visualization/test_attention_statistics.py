"""Attention statistics against hand-computed values."""
import math

import pytest
import torch

from mmcal.visualization import (attention_statistics, normalized_entropy,
                                 peak_ratio)


def maps_of(*maps):
    """(1, M, 2, 2) from M lists of 4 pixel values."""
    return torch.tensor(maps, dtype=torch.float32).view(1, len(maps), 2, 2)


def test_hand_values():
    maps = maps_of([1, 1, 1, 1],   # flat
                   [0, 0, 3, 0],   # one pixel
                   [2, 2, 0, 0],   # two pixels
                   [0, 0, 0, 0])   # dead
    entropy = normalized_entropy(maps)[0]
    assert entropy[:3].tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert math.isnan(entropy[3])
    ratio = peak_ratio(maps)[0]
    assert ratio[:3].tolist() == pytest.approx([1.0, 4.0, 2.0])
    assert math.isnan(ratio[3])

    summary = attention_statistics(maps)
    assert summary['entropy'] == pytest.approx(0.5)
    assert summary['peak_ratio'] == pytest.approx(7 / 3)
    assert summary['dead_fraction'] == pytest.approx(0.25)


def test_entropy_of_three_of_nine_pixels():
    maps = torch.zeros(2, 1, 3, 3)
    maps[0, 0, 0, :] = 5.0
    maps[1, 0, 1, 1] = 0.5
    expected = -3 * (1 / 3) * math.log(1 / 3) / math.log(9)
    assert normalized_entropy(maps)[:, 0].tolist() == pytest.approx(
        [expected, 0.0])
