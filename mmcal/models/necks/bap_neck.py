from typing import NamedTuple, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..utils.attention_ops import bilinear_attention_pool


class BAPOutput(NamedTuple):
    """What :class:`BAPNeck` returns: a tuple, as mmengine expects of a
    neck, whose parts have names."""
    part_features: torch.Tensor  # (B, M * C) float32
    counterfactual_features: torch.Tensor  # (B, M * C) float32
    attention_maps: torch.Tensor  # (B, M, H, W)


@MODELS.register_module()
class BAPNeck(BaseModule):
    """Attention maps and bilinear attention pooling of CAL.

    The attention layer is a bias-free 1x1 convolution to ``num_attentions``
    maps, BatchNorm (eps 1e-3) and ReLU. The features are pooled once under
    the learned maps and once under counterfactual maps.

    Args:
        in_channels: channels C of the backbone's last feature map.
        num_attentions: number of attention maps M.
        counterfactual: ``'random'`` draws maps from Uniform(0, 2) in
            training and uses all ones in evaluation (CAL's choice);
            ``'uniform'`` uses all ones in both.
        init_cfg: mmengine initialisation config.

    Returns (forward):
        A :class:`BAPOutput` ``(part_features, counterfactual_features,
        attention_maps)`` of shapes (B, M * C), (B, M * C), (B, M, H, W);
        the pooled features are float32.
    """

    COUNTERFACTUALS = ('random', 'uniform')
    DEFAULT_NUM_ATTENTIONS = 32

    def __init__(self,
                 in_channels: int,
                 num_attentions: int = DEFAULT_NUM_ATTENTIONS,
                 counterfactual: str = 'random',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if counterfactual not in self.COUNTERFACTUALS:
            raise ValueError(f'counterfactual must be one of '
                             f'{self.COUNTERFACTUALS}, got {counterfactual!r}')
        self.in_channels = in_channels
        self.num_attentions = num_attentions
        self.counterfactual = counterfactual
        self.attention = nn.Sequential(
            nn.Conv2d(in_channels, num_attentions, 1, bias=False),
            nn.BatchNorm2d(num_attentions, eps=1e-3), nn.ReLU(inplace=True))

    def attention_maps(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) features -> (B, M, H, W) attention maps."""
        if features.shape[1] != self.in_channels:
            raise ValueError(
                f'BAPNeck(in_channels={self.in_channels}) got a feature map '
                f'with {features.shape[1]} channels: set the neck\'s '
                'in_channels to the backbone\'s output channels')
        return self.attention(features)

    def counterfactual_maps(self,
                            attention_maps: torch.Tensor) -> torch.Tensor:
        """Fake attention maps shaped like ``attention_maps``."""
        # Drawn in the default layout whatever the maps' layout: rand_like
        # fills memory in order, so channels_last maps would get other
        # values at each position than the default layout's.
        shape, device = attention_maps.shape, attention_maps.device
        if self.training and self.counterfactual == 'random':
            return torch.rand(shape, device=device) * 2
        return torch.ones(shape, device=device)

    def forward(self, inputs: Tuple[torch.Tensor]) -> BAPOutput:
        features = inputs[-1] if isinstance(inputs, (tuple, list)) else inputs
        if features.dim() != 4:
            raise ValueError(
                'BAPNeck needs a (B, C, H, W) feature map from the backbone, '
                f'got shape {tuple(features.shape)}: set the backbone to '
                "keep it (ViT, DeiT: out_type='featmap'; ConvNeXt: "
                'gap_before_final_norm=False)')
        attention_maps = self.attention_maps(features)
        part_features = bilinear_attention_pool(features, attention_maps)
        counterfactual_features = bilinear_attention_pool(
            features, self.counterfactual_maps(attention_maps))
        return BAPOutput(part_features, counterfactual_features,
                         attention_maps)
