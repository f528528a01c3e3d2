"""An exported CAL classifier run by onnxruntime, without PyTorch models."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmcal.apis.class_names import show_name, validate_class_names


class ONNXClassifier:
    """An ONNX file written by :func:`mmcal.deployment.export_onnx`.

    Args:
        path: the ``.onnx`` file.
        num_threads: onnxruntime's intra-op threads (default: its own).
        spin: let idle threads busy-wait for the next call (onnxruntime's
            default; lowest latency, but the spinning slows other work on
            the same cores, e.g. PyTorch timed in turn with it).

    Attributes:
        classes: class names from the metadata, or None.
        views: the views baked into the graph.
        image_size: (H, W) the graph takes.
    """

    def __init__(self,
                 path: str,
                 num_threads: Optional[int] = None,
                 spin: bool = True):
        import onnxruntime
        if not osp.isfile(path):
            raise FileNotFoundError(f'ONNX file not found: {path}')
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        if not spin:
            options.add_session_config_entry('session.intra_op.allow_spinning',
                                             '0')
        self.session = onnxruntime.InferenceSession(
            path, options, providers=['CPUExecutionProvider'])
        metadata = self.session.get_modelmeta().custom_metadata_map
        if 'image_size' not in metadata:
            raise ValueError(
                f'{path} was not written by mmcal\'s pytorch2onnx.py (no '
                'image_size in its metadata)')
        self.input_name, self.image_size, num_classes = graph_signature(
            self.session, path)
        if metadata_value(metadata, 'image_size',
                          path) != list(self.image_size):
            raise ValueError(
                f'{path}: metadata image_size '
                f'{show_name(metadata["image_size"])} is not the (H, W) '
                f'{self.image_size} of the graph\'s input')
        self.classes = metadata_value(metadata, 'classes', path)
        if self.classes is not None:
            self.classes = validate_class_names(
                self.classes, f'{path}: metadata classes')
            if len(self.classes) != num_classes:
                raise ValueError(
                    f'{path}: {len(self.classes)} class names in the '
                    f'metadata for a graph with {num_classes} outputs')
        self.views = metadata_value(metadata, 'views', path)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 pixels -> (B, K) class probabilities."""
        return self.session.run(None, {self.input_name: images})[0]


def graph_signature(session, path: str) -> Tuple[str, Tuple[int, int], int]:
    """``(input name, (H, W), K)`` of a graph from ``(batch, 3, H, W)``
    images to ``(batch, K)`` scores, as :func:`export_onnx` writes them.

    Raises:
        ValueError: naming ``path``, for another number of inputs or
            outputs, other ranks, or sizes that are not fixed.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f'{path} has {len(inputs)} inputs and '
                         f'{len(outputs)} outputs; mmcal\'s export has one '
                         'of each')
    input_shape, output_shape = inputs[0].shape, outputs[0].shape
    fixed = (len(input_shape) == 4 and len(output_shape) == 2
             and all(isinstance(size, int) and size > 0
                     for size in (*input_shape[1:], output_shape[1])))
    if not fixed or input_shape[1] != 3:
        raise ValueError(
            f'{path} maps {ascii(input_shape)} to {ascii(output_shape)}; '
            'mmcal\'s export maps (batch, 3, H, W) images to (batch, K) '
            'scores of fixed H, W and K')
    return inputs[0].name, tuple(input_shape[2:]), output_shape[1]


def metadata_value(metadata: Dict[str, str], key: str, path: str):
    """The JSON value of ``metadata[key]``, None if it is missing.

    Raises:
        ValueError: naming ``path`` and ``key``, when it is not JSON.
    """
    try:
        return json.loads(metadata.get(key, 'null'))
    except (ValueError, RecursionError) as error:
        raise ValueError(f'{path}: metadata {key} is not JSON ({error}): '
                         f'{show_name(metadata[key])}') from None


def stack_inputs(inputs: Sequence, names: Sequence[str],
                 image_size: Sequence[int]) -> np.ndarray:
    """The pipeline's (3, H, W) images as one float32 (B, 3, H, W) batch.

    Args:
        inputs: tensors or arrays from the test pipeline's ``inputs``.
        names: the image names, for the error message.
        image_size: the (H, W) the model takes.
    """
    arrays: List[np.ndarray] = []
    for name, image in zip(names, inputs):
        array = np.asarray(image, dtype=np.float32)
        if array.shape != (3, *image_size):
            raise ValueError(
                f'Image {name}: the test pipeline gives shape '
                f'{tuple(array.shape)}, the ONNX model takes '
                f'{(3, *image_size)}. Export with --shape matching the '
                'pipeline, or use the config it was exported with.')
        arrays.append(array)
    return np.stack(arrays)
