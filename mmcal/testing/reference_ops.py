"""Plain per-sample reference computations of CAL / WS-DAN.

Written from the method's description (BAP, WS-DAN's batch_augment loop),
independently of mmcal's batched code. The crop and drop loops read each box
back to the host with ``.item()``, as the reference training code does.
"""
import math

import torch
import torch.nn.functional as F


def loop_bap(features, attention_maps, eps=1e-6):
    """BAP written out sample by sample, part by part, channel by channel."""
    batch, channels, height, width = features.shape
    parts = attention_maps.shape[1]
    out = torch.zeros(batch, parts * channels, dtype=torch.float64)
    for b in range(batch):
        for m in range(parts):
            for c in range(channels):
                total = 0.0
                for h in range(height):
                    for w in range(width):
                        total += float(attention_maps[b, m, h, w]) * float(
                            features[b, c, h, w])
                value = total / (height * width)
                sign = (value > 0) - (value < 0)
                out[b, m * channels + c] = sign * math.sqrt(abs(value) + eps)
        out[b] /= math.sqrt(float((out[b]**2).sum()))
    return out


def reference_box(guide, image_size, theta, padding_ratio):
    """Box ``(x1, y1, x2, y2)`` of one (1, 1, h, w) map, ends exclusive, or
    None when no pixel passes."""
    height, width = image_size
    up = F.interpolate(
        guide, size=(height, width), mode='bilinear', align_corners=True)
    threshold = theta * guide.max()
    indices = torch.nonzero(up[0, 0] >= threshold)
    if len(indices) == 0:
        return None
    pad_h, pad_w = padding_ratio * height, padding_ratio * width
    top = max(int(indices[:, 0].min().item() - pad_h), 0)
    bottom = min(int(indices[:, 0].max().item() + pad_h), height)
    left = max(int(indices[:, 1].min().item() - pad_w), 0)
    right = min(int(indices[:, 1].max().item() + pad_w), width)
    return left, top, right, bottom


def reference_crop(images, guides, thetas, padding_ratio):
    height, width = images.shape[-2:]
    boxes, crops = [], []
    for i in range(images.shape[0]):
        box = reference_box(guides[i:i + 1], (height, width), float(thetas[i]),
                            padding_ratio)
        box = box or (0, 0, width, height)  # empty mask: the whole image
        left, top, right, bottom = box
        boxes.append(box)
        crops.append(
            F.interpolate(
                images[i:i + 1, :, top:bottom, left:right],
                size=(height, width),
                mode='bilinear',
                align_corners=True))
    return torch.tensor(boxes), torch.cat(crops)


def reference_drop(images, guides, thetas):
    height, width = images.shape[-2:]
    drops = []
    for i in range(images.shape[0]):
        up = F.interpolate(
            guides[i:i + 1],
            size=(height, width),
            mode='bilinear',
            align_corners=True)
        drops.append(images[i:i + 1] * (up < float(thetas[i]) *
                                        guides[i].max()))
    return torch.cat(drops)


def embedding_bag_crop(images, boxes):
    """Crop and resize through F.embedding_bag, mmcal's earlier kernel: per
    sample, each output row (then column) is the weighted sum of the two
    source rows F.interpolate(align_corners=True) reads, fused in one
    embedding_bag call on the (B * C * H, W) rows."""

    def resample_rows(x, start, stop):
        batch, channels, height, width = x.shape
        outputs = []
        for i in range(batch):
            length = int(stop[i] - start[i])
            scale = torch.tensor((length - 1) / max(height - 1, 1),
                                 dtype=torch.float32)
            positions = scale * torch.arange(height, dtype=torch.float32)
            low = positions.long()
            weights = (positions - low).clamp(0, 1)
            high = torch.clamp(low + 1, max=length - 1)
            rows = x[i].reshape(-1, width)  # (C * H, W)
            base = torch.arange(channels)[:, None] * height + int(start[i])
            indices = torch.stack([base + low, base + high], dim=-1)
            pair = torch.stack([1 - weights, weights], dim=-1).expand(
                channels, height, 2)
            outputs.append(
                F.embedding_bag(
                    indices.reshape(-1, 2),
                    rows,
                    per_sample_weights=pair.reshape(-1, 2),
                    mode='sum').view(channels, height, width))
        return torch.stack(outputs)

    left, top, right, bottom = boxes.unbind(dim=1)
    rows = resample_rows(images.float(), top, bottom)
    return resample_rows(rows.transpose(2, 3).contiguous(), left,
                         right).transpose(2, 3)
