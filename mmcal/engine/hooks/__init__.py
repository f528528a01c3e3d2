from .attention_visualization_hook import AttentionVisualizationHook
from .dataset_check_hook import DatasetCheckHook
from .non_finite_loss_hook import NonFiniteLossHook

__all__ = [
    'AttentionVisualizationHook', 'DatasetCheckHook', 'NonFiniteLossHook'
]
