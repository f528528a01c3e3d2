"""Pure tensor functions of CAL / WS-DAN.

Every function works on a whole batch at once, on whatever device its inputs
live on, and never reads a value back to the host, so a training step on a GPU
does not stall on them.
"""
from typing import NamedTuple, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

Theta = Union[float, torch.Tensor]


def bilinear_attention_pool(features: torch.Tensor,
                            attention_maps: torch.Tensor,
                            eps: float = 1e-6) -> torch.Tensor:
    """Bilinear attention pooling (BAP) with signed sqrt and L2 norm.

    Args:
        features: (B, C, H, W) feature map.
        attention_maps: (B, M, h, w) attention maps; resized bilinearly
            (corners aligned) to (H, W) when the sizes differ.
        eps: added under the square root of the signed sqrt.

    Returns:
        (B, M * C) L2-normalised part features, row ``m * C + c`` holding
        part ``m`` of channel ``c``. Always float32: the sum over H * W
        and the normalisation lose too much in half precision.
    """
    if features.dim() != 4 or attention_maps.dim() != 4:
        raise ValueError('bilinear_attention_pool expects 4-d features and '
                         f'attention maps, got {tuple(features.shape)} and '
                         f'{tuple(attention_maps.shape)}')
    height, width = features.shape[-2:]
    with torch.autocast(features.device.type, enabled=False):
        features = features.float()
        attention_maps = attention_maps.float()
        if attention_maps.shape[-2:] != features.shape[-2:]:
            # Corners aligned, as the reference's F.upsample_bilinear.
            attention_maps = F.interpolate(
                attention_maps,
                size=(height, width),
                mode='bilinear',
                align_corners=True)
        pooled = torch.einsum('bmhw,bchw->bmc', attention_maps, features)
        pooled = pooled.flatten(1) / (height * width)
        pooled = torch.sign(pooled) * torch.sqrt(pooled.abs() + eps)
        return F.normalize(pooled, dim=-1)


def sample_guide_maps(attention_maps: torch.Tensor,
                      num_samples: int = 2,
                      eps: float = 1e-6) -> torch.Tensor:
    """Draw attention maps per sample, weighted by their activation.

    Map ``m`` of a sample is drawn with probability proportional to
    ``sqrt(sum_hw A[m] + eps)``, with replacement, on the maps' device.

    Args:
        attention_maps: (B, M, h, w), non-negative.
        num_samples: how many maps to draw per sample.

    Returns:
        (B, num_samples, h, w) the drawn maps, detached.
    """
    attention_maps = attention_maps.detach()
    weights = torch.sqrt(attention_maps.float().sum(dim=(2, 3)) + eps)
    indices = torch.multinomial(weights, num_samples, replacement=True)
    index = indices[:, :, None, None].expand(-1, -1,
                                             *attention_maps.shape[-2:])
    return attention_maps.gather(1, index)


class GuideMaps(NamedTuple):
    """The two maps a training step draws per sample, each (B, 1, h, w)."""
    crop_maps: torch.Tensor
    drop_maps: torch.Tensor


def sample_crop_drop_maps(attention_maps: torch.Tensor) -> GuideMaps:
    """A crop map and a drop map per sample, drawn by
    :func:`sample_guide_maps` in one draw (two maps with replacement)."""
    guides = sample_guide_maps(attention_maps, num_samples=2)
    return GuideMaps(guides[:, :1], guides[:, 1:])


def _per_sample(theta: Theta, batch_size: int,
                reference: torch.Tensor) -> torch.Tensor:
    """Theta as a (B,) float32 tensor on ``reference``'s device."""
    if not isinstance(theta, torch.Tensor):
        # Filled on the device: copying a host value there would sync.
        return torch.full((batch_size, ),
                          float(theta),
                          device=reference.device)
    theta = theta.to(device=reference.device, dtype=torch.float32)
    if theta.dim() == 0:
        return theta.expand(batch_size)
    if theta.shape != (batch_size, ):
        raise ValueError(f'theta must be a float or a ({batch_size},) '
                         f'tensor, got shape {tuple(theta.shape)}')
    return theta


def upsample_guide(attention_maps: torch.Tensor, image_size: Sequence[int],
                   theta: Theta) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resize guide maps to the image and compute per-sample thresholds.

    Args:
        attention_maps: (B, 1, h, w) guide maps.
        image_size: (H, W) of the images.
        theta: float or (B,) fractions of each sample's maximum.

    Returns:
        (B, 1, H, W) maps resized bilinearly with corners aligned, and
        (B, 1, 1, 1) thresholds ``theta * max``.
    """
    if attention_maps.dim() != 4 or attention_maps.shape[1] != 1:
        raise ValueError('guide maps must have shape (B, 1, h, w), got '
                         f'{tuple(attention_maps.shape)}')
    batch_size = attention_maps.shape[0]
    maps = attention_maps.detach().float()
    thresholds = _per_sample(theta, batch_size, maps) * maps.amax(
        dim=(1, 2, 3))
    upsampled = F.interpolate(
        maps, size=tuple(image_size), mode='bilinear', align_corners=True)
    return upsampled, thresholds.view(-1, 1, 1, 1)


def _first_last(present: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """First and last True index along the last dim of a (B, L) mask."""
    length = present.shape[-1]
    first = present.float().argmax(dim=-1)
    last = length - 1 - present.flip(-1).float().argmax(dim=-1)
    return first, last


def attention_crop_boxes(attention_maps: torch.Tensor,
                         image_size: Sequence[int], theta: Theta,
                         padding_ratio: float) -> torch.Tensor:
    """Boxes around the pixels whose guide value reaches the threshold.

    The box of a sample spans the rows and columns of its pixels with
    ``map >= theta * max``, widened by ``padding_ratio * H`` rows and
    ``padding_ratio * W`` columns on each side, truncated to whole pixels
    toward zero and clamped to the image, as WS-DAN does. A sample with no
    such pixel (e.g. a NaN map) gets the whole image.

    Args:
        attention_maps: (B, 1, h, w) guide maps.
        image_size: (H, W).
        theta: float or (B,) tensor.
        padding_ratio: padding as a fraction of the image size.

    Returns:
        (B, 4) int64 boxes ``(x1, y1, x2, y2)`` in pixels, torchvision's
        convention, with exclusive ends ``x2``, ``y2``.
    """
    height, width = image_size
    upsampled, thresholds = upsample_guide(attention_maps, image_size, theta)
    upsampled = upsampled[:, 0]
    thresholds = thresholds.view(-1, 1)
    # A row (column) holds a passing pixel iff its maximum passes; a NaN
    # maximum passes nothing, like the reference's empty mask.
    rows = upsampled.amax(dim=2) >= thresholds
    cols = upsampled.amax(dim=1) >= thresholds
    top, bottom = _first_last(rows)
    left, right = _first_last(cols)
    pad_h, pad_w = padding_ratio * height, padding_ratio * width
    # int() of the reference truncates toward zero; the clamp then stops
    # at the image border, the end index being exclusive. floor() equals
    # int() on these values once clamped (it differs only on (-1, 0), which
    # both clamp to 0, or, for a negative padding, on ends the maximum below
    # replaces), and unlike trunc() it has an ONNX operator.
    top = torch.floor(top - pad_h).clamp(min=0)
    bottom = torch.floor(bottom + pad_h).clamp(max=height)
    left = torch.floor(left - pad_w).clamp(min=0)
    right = torch.floor(right + pad_w).clamp(max=width)
    # With under a pixel of padding a one-row (column) mask would give an
    # empty slice, on which the reference fails: keep that row (column).
    bottom = torch.maximum(bottom, top + 1)
    right = torch.maximum(right, left + 1)
    empty = ~rows.any(dim=1)
    boxes = [
        left.masked_fill(empty, 0),
        top.masked_fill(empty, 0),
        right.masked_fill(empty, width),
        bottom.masked_fill(empty, height)
    ]
    return torch.stack(boxes, dim=1).long()


def _resample_rows(inputs: torch.Tensor, start: torch.Tensor,
                   stop: torch.Tensor) -> torch.Tensor:
    """Stretch rows ``start:stop`` of each sample over all H rows.

    Bilinear with corners aligned, with the source positions and weights
    computed in float32 exactly as ``F.interpolate`` computes them, so the
    result matches the per-sample resize to float rounding. The sampling
    rule, for a sample with ``L = stop - start`` source rows and output
    row ``i`` in ``0 .. H-1``:

    - ``scale = float32(L - 1) / max(H - 1, 1)`` (float32 division) and
      position ``p = scale * i`` (float32 product), so row 0 reads source
      row 0 and row H-1 reads source row L-1 (corners aligned);
    - ``low = int(p)`` (p >= 0, so truncation is the floor), ``high =
      min(low + 1, L - 1)`` and weight ``w = clamp(p - low, 0, 1)``;
    - ``out[i] = src[start + low] * (1 - w) + src[start + high] * w``,
      the product rounded once and the sum fused (``addcmul_``), which is
      how ``F.interpolate`` and the earlier ``embedding_bag`` kernel round.

    An off-by-one here moves the crop by a row; the tests compare the
    boxes with WS-DAN's per-sample loop exactly and the pixels with the
    ``embedding_bag`` kernel bit for bit.

    Args:
        inputs: (B, C, H, W).
        start, stop: (B,) int64 first and exclusive last source row.

    Returns:
        (B, C, H, W).
    """
    batch_size, channels, height, width = inputs.shape
    lengths = stop - start
    scale = (lengths - 1).float() / max(height - 1, 1)
    positions = scale[:, None] * torch.arange(
        height, dtype=torch.float32, device=inputs.device)
    low = positions.long()
    weights = (positions - low).clamp(0, 1)
    high = torch.minimum(low + 1, (lengths - 1)[:, None])
    # Rows of every (sample, channel) are contiguous: each output row is
    # the weighted sum of two rows of the flattened (B * C * H, W) tensor,
    # gathered by F.embedding (an ONNX Gather; embedding_bag, which fuses
    # the sum, only exports as a loop). addcmul_ rounds like the fused
    # sum: the pixels are bit for bit those of embedding_bag.
    offsets = torch.arange(
        batch_size * channels, device=inputs.device).view(
            batch_size, channels, 1) * height + start.view(-1, 1, 1)
    flat = inputs.reshape(-1, width)
    low_rows = F.embedding((offsets + low[:, None]).view(-1), flat)
    high_rows = F.embedding((offsets + high[:, None]).view(-1), flat)
    weights = weights[:, None, :, None].expand(batch_size, channels, height,
                                               1).reshape(-1, 1)
    rows = low_rows.mul_(1 - weights).addcmul_(high_rows, weights)
    return rows.view(inputs.shape)


def crop_and_resize(inputs: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Cut each sample's box and resize it back to the full image size.

    Equal, up to float rounding, to ``F.interpolate(inputs[i:i+1, :, y1:y2,
    x1:x2], (H, W), mode='bilinear', align_corners=True)`` for every sample
    ``i``, done for the batch at once as two separable passes (rows, then
    columns), with ``F.interpolate``'s own sample points: ``grid_sample``'s
    normalised coordinates move them enough to change pixels by ~2e-4 at
    224 px.

    Args:
        inputs: (B, C, H, W) images.
        boxes: (B, 4) int64 ``(x1, y1, x2, y2)``, exclusive ends, as
            :func:`attention_crop_boxes` gives them.

    Returns:
        (B, C, H, W) crops in the input's dtype, in channels_last memory
        format when the input is; otherwise as a transposed view (the
        caller's torch.cat lays them out faster than a copy here).
    """
    boxes = boxes.to(device=inputs.device, dtype=torch.long)
    left, top, right, bottom = boxes.unbind(dim=1)
    if (inputs.is_contiguous(memory_format=torch.channels_last)
            and not inputs.is_contiguous()):
        # In memory (B, H, W, C): an image row is W * C contiguous values
        # and a pixel C of them, so both passes run on views, without a
        # copy, and the result is channels_last again.
        batch_size, channels, height, width = inputs.shape
        pixels = inputs.float().permute(0, 2, 3, 1)
        crops = _resample_rows(
            pixels.reshape(batch_size, 1, height, width * channels), top,
            bottom)
        crops = _resample_rows(
            crops.view(batch_size, height, width, channels), left, right)
        return crops.permute(0, 3, 1, 2).to(inputs.dtype)
    crops = _resample_rows(inputs.float(), top, bottom)
    crops = _resample_rows(crops.transpose(2, 3), left, right)
    return crops.transpose(2, 3).to(inputs.dtype)


def attention_crop(inputs: torch.Tensor, attention_maps: torch.Tensor,
                   theta: Theta, padding_ratio: float) -> torch.Tensor:
    """Attention cropping: zoom each image into its attended region.

    Args:
        inputs: (B, C, H, W) images.
        attention_maps: (B, 1, h, w) guide maps.
        theta: float or (B,) fractions of each sample's maximum.
        padding_ratio: box padding as a fraction of the image size.

    Returns:
        (B, C, H, W) crops resized to the input size.
    """
    boxes = attention_crop_boxes(attention_maps, inputs.shape[-2:], theta,
                                 padding_ratio)
    return crop_and_resize(inputs, boxes)


def attention_drop(inputs: torch.Tensor, attention_maps: torch.Tensor,
                   theta: Theta) -> torch.Tensor:
    """Attention dropping: zero the pixels at or above the threshold.

    Args:
        inputs: (B, C, H, W) images.
        attention_maps: (B, 1, h, w) guide maps.
        theta: float or (B,) fractions of each sample's maximum.

    Returns:
        (B, C, H, W) images with ``map >= theta * max`` set to zero.
    """
    upsampled, thresholds = upsample_guide(attention_maps, inputs.shape[-2:],
                                           theta)
    keep = (upsampled < thresholds).to(inputs.dtype)
    return inputs * keep
