from .attention import attention_views, denormalize
from .inference import (build_test_pipeline, collect_images, config_classes,
                        format_predictions, image_loader, init_classifier)

__all__ = [
    'attention_views', 'denormalize', 'build_test_pipeline',
    'collect_images', 'config_classes', 'format_predictions', 'image_loader',
    'init_classifier'
]
