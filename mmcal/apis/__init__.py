from .class_names import check_class_names, validate_class_names
from .inference import (PREDICTION_FORMATS, add_prediction_arguments,
                        check_output_names, check_prediction_arguments,
                        collect_images, config_classes, folder_images,
                        format_predictions, image_loader, inference_pipeline,
                        init_classifier)

__all__ = [
    'check_class_names', 'validate_class_names', 'PREDICTION_FORMATS',
    'add_prediction_arguments', 'check_output_names',
    'check_prediction_arguments', 'collect_images', 'config_classes',
    'folder_images', 'format_predictions', 'image_loader',
    'inference_pipeline', 'init_classifier'
]
