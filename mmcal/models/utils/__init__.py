from .attention_ops import (attention_crop, attention_crop_boxes,
                            attention_drop, bilinear_attention_pool,
                            crop_and_resize, sample_guide_maps,
                            upsample_guide)

__all__ = [
    'attention_crop', 'attention_crop_boxes', 'attention_drop',
    'bilinear_attention_pool', 'crop_and_resize', 'sample_guide_maps',
    'upsample_guide'
]
