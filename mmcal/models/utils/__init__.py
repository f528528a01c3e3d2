from .attention_ops import (GuideMaps, attention_crop, attention_crop_boxes,
                            attention_drop, bilinear_attention_pool,
                            crop_and_resize, sample_crop_drop_maps,
                            sample_guide_maps, upsample_guide)
from .memory_format import keep_contiguous_format

__all__ = [
    'GuideMaps', 'attention_crop', 'attention_crop_boxes', 'attention_drop',
    'bilinear_attention_pool', 'crop_and_resize', 'keep_contiguous_format',
    'sample_crop_drop_maps', 'sample_guide_maps', 'upsample_guide'
]
