from .attention import attention_views, denormalize
from .inference import (collect_images, config_classes, folder_images,
                        image_loader, inference_pipeline, init_classifier)

__all__ = [
    'attention_views', 'denormalize', 'collect_images', 'config_classes',
    'folder_images', 'image_loader', 'inference_pipeline', 'init_classifier'
]
