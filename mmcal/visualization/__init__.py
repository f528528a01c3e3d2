from .attention_figure import attention_figure_shape, draw_attention_figure
from .attention_statistics import (attention_statistics, normalized_entropy,
                                   peak_ratio)
from .attention_views import attention_views, denormalize, draw_view_figure

__all__ = [
    'attention_figure_shape', 'draw_attention_figure', 'attention_statistics',
    'normalized_entropy', 'peak_ratio', 'attention_views', 'denormalize',
    'draw_view_figure'
]
