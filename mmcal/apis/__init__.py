from .inference import (build_test_pipeline, collect_images, config_classes,
                        image_loader, init_classifier)

__all__ = [
    'build_test_pipeline', 'collect_images', 'config_classes', 'image_loader',
    'init_classifier'
]
