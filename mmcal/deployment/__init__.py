"""Export of trained CAL classifiers to ONNX and running them with
onnxruntime. Needs the optional ``deploy`` dependencies (``pip install -e
".[deploy]"``); ``import mmcal`` does not import this package."""
try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
except ImportError as error:
    raise ImportError(
        f'mmcal.deployment needs onnx and onnxruntime ({error}); install '
        'them with pip install -e ".[deploy]"') from error

from .export import (INPUT_NAME, MIN_OPSET, OUTPUT_NAME, CALProbabilities,
                     export_onnx, pipeline_image_size, select_views)
from .runtime import ONNXClassifier, stack_inputs

__all__ = [
    'INPUT_NAME', 'MIN_OPSET', 'OUTPUT_NAME', 'CALProbabilities',
    'export_onnx', 'pipeline_image_size', 'select_views', 'ONNXClassifier',
    'stack_inputs'
]
