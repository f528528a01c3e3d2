from .attention_figure import attention_figure_shape, draw_attention_figure
from .attention_statistics import (attention_statistics, normalized_entropy,
                                   peak_ratio)

__all__ = [
    'attention_figure_shape', 'draw_attention_figure', 'attention_statistics',
    'normalized_entropy', 'peak_ratio'
]
