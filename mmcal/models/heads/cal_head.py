from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from mmpretrain.evaluation.metrics import Accuracy
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@torch.no_grad()
def feature_center_update_(centers: torch.Tensor, features: torch.Tensor,
                           labels: torch.Tensor,
                           beta: float) -> torch.Tensor:
    """One step of CAL's moving feature centres, in place.

    The target of a sample is its class centre, L2-normalised, taken before
    the update. A class seen ``n`` times moves by the mean of its ``n``
    updates ``beta * (f - target)``. Per-class sums and counts are summed
    over all processes when training is distributed, so every rank applies
    the same update.

    Args:
        centers: (K, D) current centres, updated in place; entries whose
            update is not finite keep their old value.
        features: (B, D) features of the batch (not differentiated).
        labels: (B,) class indices.
        beta: update rate.

    Returns:
        (B, D) targets of the samples.
    """
    features = features.to(centers.dtype)
    if get_world_size() > 1:
        return _distributed_center_update_(centers, features, labels, beta)
    # One process: only the batch's rows change. Working on them alone
    # spares some ten passes over the whole (K, D) matrix per step (K = 200,
    # D = 32 * 2048 in the reference recipe), with the same sums in the same
    # order: a class's updates are added at its first sample's row.
    rows = centers[labels]
    targets = F.normalize(rows, dim=-1)
    first = (labels[:, None] == labels[None, :]).float().argmax(dim=1)
    sums = torch.zeros_like(features).index_add_(0, first, features)
    counts = features.new_zeros(labels.shape[0]).index_add_(
        0, first, features.new_ones(labels.shape[0]))
    means = (sums / counts.clamp(min=1)[:, None])[first]
    new_rows = rows + beta * (means - targets)
    # A batch with non-finite features (a diverging step that
    # FiniteLossOptimWrapper skips) must not poison the centres for good.
    new_rows = torch.where(new_rows.isfinite(), new_rows, rows)
    # Repeated labels write the same row: the write order does not matter.
    centers.index_copy_(0, labels, new_rows)
    return targets


def _distributed_center_update_(centers: torch.Tensor,
                                features: torch.Tensor,
                                labels: torch.Tensor,
                                beta: float) -> torch.Tensor:
    """``feature_center_update_`` with sums and counts over all ranks."""
    normalized = F.normalize(centers, dim=-1)
    targets = normalized[labels]
    sums = torch.zeros_like(centers).index_add_(0, labels, features)
    # index_add_ rather than bincount: bincount reads the largest label
    # back to the host on CUDA.
    counts = centers.new_zeros(centers.shape[0]).index_add_(
        0, labels, centers.new_ones(labels.shape[0]))
    all_reduce(sums)
    all_reduce(counts)
    seen = (counts > 0).to(centers.dtype)[:, None]
    means = sums / counts.clamp(min=1)[:, None]
    new_centers = centers + beta * seen * (means - normalized)
    # A batch with non-finite features (a diverging step that
    # FiniteLossOptimWrapper skips) must not poison the centres for good.
    centers.copy_(torch.where(new_centers.isfinite(), new_centers, centers))
    return targets


@MODELS.register_module()
class CALHead(ClsHead):
    """Linear classifier of CAL with effect logits and feature centres.

    Raw logits are ``fc(scale * f)``; effect logits ``fc(scale * f) -
    fc(scale * f')`` with ``f'`` pooled under counterfactual attention.

    Args:
        num_classes: K.
        in_channels: length of the pooled features, M * C.
        scale: factor applied to the features before ``fc``.
        center_momentum: beta of the centre update.
        loss_weights: weights of ``raw`` (raw images), ``aug`` (crop and
            drop images), ``effect`` (effect logits of all views) and
            ``center`` (centre loss). Defaults are CAL's; ``effect=0``
            gives WS-DAN.
        loss: config of the classification loss (batch mean).
        topk, cal_acc, init_cfg: as in ``ClsHead``.

    Input ``feats`` of every method is a neck output ``(part_features,
    counterfactual_features, attention_maps)`` (a
    :class:`mmcal.models.necks.BAPOutput`).
    """

    DEFAULT_LOSS_WEIGHTS = dict(raw=1 / 3, aug=2 / 3, effect=1.0, center=1.0)

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 scale: float = 100.0,
                 center_momentum: float = 0.05,
                 loss_weights: Optional[Dict[str, float]] = None,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk=(1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        unknown = set(loss_weights or {}) - set(self.DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(
                f'Unknown CALHead loss_weights keys {sorted(unknown)}; valid '
                f'keys are {sorted(self.DEFAULT_LOSS_WEIGHTS)}')
        self.loss_weights = {
            **self.DEFAULT_LOSS_WEIGHTS,
            **(loss_weights or {})
        }
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.scale = scale
        self.center_momentum = center_momentum
        self.fc = nn.Linear(in_channels, num_classes, bias=False)
        self.register_buffer('feature_centers',
                             torch.zeros(num_classes, in_channels))

    def pre_logits(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """The pooled part features (B, M * C)."""
        features, _, _ = feats
        if features.dim() != 2 or features.shape[1] != self.in_channels:
            raise ValueError(
                f'CALHead(in_channels={self.in_channels}) got features of '
                f'shape {tuple(features.shape)}: in_channels must equal '
                'num_attentions * backbone channels')
        return features

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """(B, M * C) pooled features -> (B, K) logits."""
        return self.fc(self.scale * features.to(self.fc.weight.dtype))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Raw logits (B, K)."""
        return self.classify(self.pre_logits(feats))

    def effect_logits(self,
                      feats: Sequence[torch.Tensor],
                      logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Effect logits ``p - p'`` (B, K); ``logits``, the raw logits ``p``
        of ``feats``, when they are at hand already."""
        _, counterfactual_features, _ = feats
        if logits is None:
            logits = self(feats)
        return logits - self.classify(counterfactual_features)

    def predict_from_logits(
            self,
            logits: torch.Tensor,
            data_samples: Optional[List[DataSample]] = None
    ) -> List[DataSample]:
        """Scores and labels of (B, K) logits, e.g. averaged over views, as
        ``ClsHead.predict`` gives them for its own logits."""
        return self._get_predictions(logits, data_samples)

    def loss(self,
             feats: Sequence[torch.Tensor],
             data_samples: List[DataSample],
             aug_feats: Optional[Sequence[torch.Tensor]] = None) -> dict:
        """CAL's losses, updating the feature centres.

        Args:
            feats: neck output of the raw images (B samples).
            data_samples: their annotations.
            aug_feats: neck output of the augmented images, ``n * B``
                samples in blocks of B ordered like ``data_samples`` (crops,
                then drops); without it only the raw terms are computed.

        Returns:
            ``loss_raw``, ``loss_effect``, ``loss_center`` and, with
            ``aug_feats``, ``loss_aug``, each already weighted.
        """
        labels = torch.cat([sample.gt_label for sample in data_samples])
        features = self.pre_logits(feats)
        logits = self.classify(features)
        effect = self.effect_logits(feats, logits)
        weights = self.loss_weights
        losses = dict(loss_raw=weights['raw'] * self._ce(logits, labels))

        effect_logits = [effect]
        if aug_feats is not None:
            aug_features = self.pre_logits(aug_feats)
            num_views = aug_features.shape[0] // labels.shape[0]
            aug_labels = labels.repeat(num_views)
            aug_logits = self.classify(aug_features)
            losses['loss_aug'] = weights['aug'] * self._ce(
                aug_logits, aug_labels)
            effect_logits.append(self.effect_logits(aug_feats, aug_logits))
        effect_logits = torch.cat(effect_logits)
        losses['loss_effect'] = weights['effect'] * self._ce(
            effect_logits, labels.repeat(effect_logits.shape[0] //
                                         labels.shape[0]))

        targets = feature_center_update_(self.feature_centers, features,
                                         labels, self.center_momentum)
        center_loss = (features - targets).pow(2).sum() / features.shape[0]
        losses['loss_center'] = weights['center'] * center_loss

        if self.cal_acc:
            accuracies = Accuracy.calculate(logits, labels, topk=self.topk)
            losses.update(
                {f'accuracy_top-{k}': a
                 for k, a in zip(self.topk, accuracies)})
        return losses

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_module(logits, labels, avg_factor=logits.shape[0])
