"""An exported CAL classifier run by onnxruntime, without PyTorch models."""
import json
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np


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
        self.classes = json.loads(metadata.get('classes', 'null'))
        self.views = json.loads(metadata.get('views', 'null'))
        self.image_size = tuple(json.loads(metadata['image_size']))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 pixels -> (B, K) class probabilities."""
        return self.session.run(None, {self.input_name: images})[0]


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
