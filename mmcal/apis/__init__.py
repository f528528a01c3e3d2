from .inference import (collect_images, config_classes, folder_images,
                        format_predictions, image_loader, inference_pipeline,
                        init_classifier)

__all__ = [
    'collect_images', 'config_classes', 'folder_images', 'format_predictions',
    'image_loader', 'inference_pipeline', 'init_classifier'
]
