from .attention_ops import (GuideMaps, attention_crop, attention_crop_boxes,
                            attention_drop, bilinear_attention_pool,
                            crop_and_resize, sample_crop_drop_maps,
                            sample_guide_maps, upsample_guide)

__all__ = [
    'GuideMaps', 'attention_crop', 'attention_crop_boxes', 'attention_drop',
    'bilinear_attention_pool', 'crop_and_resize', 'sample_crop_drop_maps',
    'sample_guide_maps', 'upsample_guide'
]
