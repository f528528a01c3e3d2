"""Attention maps and attention-guided views of a batch, for display."""
from typing import Dict

import numpy as np
import torch

from mmcal.models.utils.attention_ops import sample_crop_drop_maps

from .attention_figure import draw_attention_figure


def denormalize(data_preprocessor, inputs: torch.Tensor) -> np.ndarray:
    """Undo a ``ClsDataPreprocessor``'s normalisation for display.

    Args:
        data_preprocessor: the model's preprocessor (mean, std, to_rgb).
        inputs: (B, 3, H, W) normalised batch.

    Returns:
        (B, H, W, 3) uint8 RGB images.
    """
    images = inputs.detach().float()
    if getattr(data_preprocessor, '_enable_normalize', False):
        images = images * data_preprocessor.std + data_preprocessor.mean
    if not data_preprocessor.to_rgb:
        # Images are loaded BGR (OpenCV) and were left so.
        images = images.flip(1)
    images = images.clamp(0, 255).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def attention_views(model, inputs: torch.Tensor,
                    seed: int = 0) -> Dict[str, np.ndarray]:
    """Attention maps of a batch and the crops and drops training makes.

    As in a training step, a crop map and a drop map are drawn per image
    from its attention maps (``sample_crop_drop_maps``, here with a fixed
    seed so a picture is the same every time); the thresholds are the
    middles of the preprocessor's training ranges.

    Args:
        model: a ``CALClassifier`` (not wrapped), in eval mode.
        inputs: (B, 3, H, W) normalised batch.
        seed: seed of the map draw.

    Returns:
        ``images``, ``crops``, ``drops``: (B, H, W, 3) uint8 RGB;
        ``attention_maps``: (B, M, h, w) float32.
    """
    preprocessor = model.data_preprocessor
    attention_maps = model.get_attention_maps(inputs)
    # Drawn on the CPU under a private seed: the global random state of
    # training is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        crop_maps, drop_maps = sample_crop_drop_maps(attention_maps.cpu())
    crops = preprocessor.crop(inputs, crop_maps.to(inputs.device),
                              float(np.mean(preprocessor.crop_theta_range)),
                              preprocessor.crop_padding_ratio)
    drops = preprocessor.drop(inputs, drop_maps.to(inputs.device),
                              float(np.mean(preprocessor.drop_theta_range)))
    return dict(
        images=denormalize(preprocessor, inputs),
        crops=denormalize(preprocessor, crops),
        drops=denormalize(preprocessor, drops),
        attention_maps=attention_maps.float().cpu().numpy())


def draw_view_figure(views: Dict[str, np.ndarray], index: int,
                     title: str) -> np.ndarray:
    """:func:`draw_attention_figure` of image ``index`` of
    :func:`attention_views`' output, as an (h, w, 3) uint8 RGB array."""
    return draw_attention_figure(
        views['images'][index],
        views['attention_maps'][index],
        views['crops'][index],
        views['drops'][index],
        title=title)
