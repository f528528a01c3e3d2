from typing import Optional, Sequence, Tuple

import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

from ..utils.attention_ops import Theta, attention_crop, attention_drop


def _check_range(name: str,
                 value_range: Sequence[float]) -> Tuple[float, float]:
    if len(value_range) != 2:
        raise ValueError(f'{name} must be (low, high), got {value_range!r}')
    low, high = value_range
    if not 0 <= low <= high <= 1:
        raise ValueError(f'{name} must be (low, high) with 0 <= low <= high '
                         f'<= 1, got {tuple(value_range)}')
    return float(low), float(high)


@MODELS.register_module()
class AttentionCropDrop(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` that also crops and drops by attention.

    It stacks, converts and normalises batches exactly like
    ``ClsDataPreprocessor``; the classifier then calls :meth:`crop`,
    :meth:`drop` or :meth:`augment` on the normalised batch with the guide
    maps of its first pass.

    Args:
        crop_theta_range: range of the per-sample crop threshold drawn in
            training, as a fraction of each map's maximum.
        drop_theta_range: the same for dropping.
        crop_padding_ratio: padding of training crops, as a fraction of the
            image size.
        channels_last: emit batches in ``torch.channels_last`` memory
            format; a :class:`CALClassifier` then converts its weights to
            that format once (but for its ``contiguous_modules``), and
            crop, drop and the prediction views keep it. Faster
            convolutions on most CPUs and on GPUs with mixed precision.
        **kwargs: arguments of ``ClsDataPreprocessor`` (mean, std, to_rgb,
            ...). Batch augments (Mixup, CutMix, ...; ``batch_augments`` or
            the classifier's ``train_cfg=dict(augments=...)``) are refused:
            they mix images and write soft labels to ``gt_score``, while
            every CAL loss term and the feature-centre update read the hard
            ``gt_label``, so training would silently learn the unmixed
            labels of mixed images.
    """

    def __init__(self,
                 crop_theta_range: Sequence[float] = (0.4, 0.6),
                 drop_theta_range: Sequence[float] = (0.2, 0.5),
                 crop_padding_ratio: float = 0.1,
                 channels_last: bool = False,
                 batch_augments: Optional[dict] = None,
                 **kwargs):
        if batch_augments:
            raise ValueError(
                'CAL does not support batch augments (Mixup, CutMix, ...): '
                f'got {batch_augments!r} (from model.train_cfg or '
                'data_preprocessor.batch_augments). They write soft labels '
                'to gt_score, but CALHead\'s losses and its feature-centre '
                'update read the hard gt_label, so the model would learn '
                'the wrong labels of mixed images. Remove the augments.')
        # ImageClassifier passes its train_cfg (None without augments).
        super().__init__(**kwargs)
        self.channels_last = bool(channels_last)
        self.crop_theta_range = _check_range('crop_theta_range',
                                             crop_theta_range)
        self.drop_theta_range = _check_range('drop_theta_range',
                                             drop_theta_range)
        self.crop_padding_ratio = crop_padding_ratio

    def forward(self, data: dict, training: bool = False) -> dict:
        """``ClsDataPreprocessor.forward``, in channels_last if asked for."""
        data = super().forward(data, training)
        if self.channels_last:
            data['inputs'] = data['inputs'].contiguous(
                memory_format=torch.channels_last)
        return data

    def crop(self, inputs: torch.Tensor, attention_maps: torch.Tensor,
             theta: Theta, padding_ratio: float) -> torch.Tensor:
        """Zoom into the attended region; see ``attention_crop``.

        Args:
            inputs: (B, 3, H, W) normalised batch.
            attention_maps: (B, 1, h, w) guide maps.
            theta: float or (B,) tensor of fractions of each maximum.
            padding_ratio: padding as a fraction of the image size.

        Returns:
            (B, 3, H, W) crops.
        """
        return attention_crop(inputs, attention_maps, theta, padding_ratio)

    def drop(self, inputs: torch.Tensor, attention_maps: torch.Tensor,
             theta: Theta) -> torch.Tensor:
        """Zero the attended region; see ``attention_drop``.

        Returns:
            (B, 3, H, W) images.
        """
        return attention_drop(inputs, attention_maps, theta)

    def _draw_theta(self, value_range: Tuple[float, float],
                    reference: torch.Tensor) -> torch.Tensor:
        low, high = value_range
        uniform = torch.rand(reference.shape[0], device=reference.device)
        return low + (high - low) * uniform

    @torch.no_grad()
    def augment(self, inputs: torch.Tensor, crop_maps: torch.Tensor,
                drop_maps: torch.Tensor) -> torch.Tensor:
        """The training views: crops, then drops, thresholds drawn per sample.

        Args:
            inputs: (B, 3, H, W) normalised batch.
            crop_maps: (B, 1, h, w) guide maps for cropping.
            drop_maps: (B, 1, h, w) guide maps for dropping.

        Returns:
            (2B, 3, H, W) crops followed by drops.
        """
        crops = self.crop(inputs, crop_maps,
                          self._draw_theta(self.crop_theta_range, inputs),
                          self.crop_padding_ratio)
        drops = self.drop(inputs, drop_maps,
                          self._draw_theta(self.drop_theta_range, inputs))
        return torch.cat([crops, drops])
