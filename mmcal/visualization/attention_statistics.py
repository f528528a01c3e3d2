"""Summary statistics of attention maps, logged while training."""
import math

import torch


def normalized_entropy(attention_maps: torch.Tensor) -> torch.Tensor:
    """Entropy of each map as a distribution over its pixels, in [0, 1].

    Each map is divided by its sum; the entropy is divided by
    ``log(h * w)``, so a flat map gives 1 and a single active pixel gives 0.
    Maps that sharpen onto parts over training move toward 0.

    Args:
        attention_maps: (B, M, h, w) non-negative maps.

    Returns:
        (B, M) float32; NaN for a map that is zero everywhere (no
        distribution).
    """
    maps = attention_maps.detach().float().flatten(2)
    total = maps.sum(dim=-1, keepdim=True)
    probabilities = maps / total
    # 0 * log(0) is 0 in the entropy; xlogy gives exactly that.
    entropy = -torch.special.xlogy(probabilities, probabilities).sum(dim=-1)
    num_pixels = maps.shape[-1]
    if num_pixels > 1:  # a one-pixel map has entropy 0 already
        entropy = entropy / math.log(num_pixels)
    return torch.where(total[..., 0] > 0, entropy,
                       torch.full_like(entropy, float('nan')))


def peak_ratio(attention_maps: torch.Tensor) -> torch.Tensor:
    """Maximum of each map over its mean: 1 when flat, ``h * w`` at most.

    Args:
        attention_maps: (B, M, h, w) non-negative maps.

    Returns:
        (B, M) float32; NaN for a map that is zero everywhere.
    """
    maps = attention_maps.detach().float().flatten(2)
    mean = maps.mean(dim=-1)
    ratio = maps.amax(dim=-1) / mean
    return torch.where(mean > 0, ratio, torch.full_like(ratio, float('nan')))


def attention_statistics(attention_maps: torch.Tensor) -> dict:
    """Batch summary of :func:`normalized_entropy` and :func:`peak_ratio`.

    Args:
        attention_maps: (B, M, h, w) non-negative maps.

    Returns:
        ``entropy`` and ``peak_ratio``, means over the maps that are not
        zero everywhere (NaN if none is), and ``dead_fraction``, the share
        of maps that are zero everywhere (dead ReLU maps), as floats.
    """
    entropy = normalized_entropy(attention_maps)
    dead = torch.isnan(entropy)
    return dict(
        entropy=entropy.nanmean().item(),
        peak_ratio=peak_ratio(attention_maps).nanmean().item(),
        dead_fraction=dead.float().mean().item())
