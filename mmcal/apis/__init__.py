from .inference import (PREDICTION_FORMATS, add_prediction_arguments,
                        check_class_names, check_prediction_arguments,
                        collect_images, config_classes, folder_images,
                        format_predictions, image_loader, inference_pipeline,
                        init_classifier)

__all__ = [
    'PREDICTION_FORMATS', 'add_prediction_arguments', 'check_class_names',
    'check_prediction_arguments', 'collect_images', 'config_classes',
    'folder_images', 'format_predictions', 'image_loader',
    'inference_pipeline', 'init_classifier'
]
