"""A CALClassifier, test views included, as one ONNX graph."""
import json
import os.path as osp
import tempfile
import warnings
from typing import List, Optional, Sequence, Tuple

import onnx
import torch
from torch import nn

from mmcal.models.classifiers.cal_classifier import (CALClassifier,
                                                     parse_views)
from mmcal.version import __version__

INPUT_NAME = 'images'
OUTPUT_NAME = 'probabilities'
# BAP's einsum needs opset 12 (Einsum); the guide's corner-aligned resize, 11.
MIN_OPSET = 12
VIEW_CHOICES = ('raw', 'val', 'test')


class CALProbabilities(nn.Module):
    """A CALClassifier from stacked pipeline output to probabilities.

    The data preprocessor (channel swap, normalisation, padding) and every
    view of ``predict`` (raw image, crops of the mean attention map, flip)
    run inside, so an exported graph needs nothing but the test pipeline's
    pixels.

    Args:
        model: the classifier, in eval mode.
        views: ``dict(crops=[(theta, padding_ratio)], flip=bool)``.
    """

    def __init__(self, model: CALClassifier, views: dict):
        super().__init__()
        self.model = model
        self.views = parse_views(views, 'views')

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float 0-255 pixels in the test pipeline's channel
        order -> (B, K) class probabilities, as ``model.predict``."""
        inputs = self.model.data_preprocessor(dict(inputs=images),
                                              False)['inputs']
        return self.model.predict_logits(inputs, self.views).softmax(dim=1)


def check_exportable(model: nn.Module) -> None:
    """Refuse anything but a CALClassifier."""
    if not isinstance(model, CALClassifier):
        raise TypeError(
            'ONNX export supports CALClassifier models only (their test '
            'views run inside the graph); the config builds a '
            f'{type(model).__name__}. Export other mmpretrain models with '
            'torch.onnx or mmdeploy.')


def select_views(model: nn.Module, name: str) -> dict:
    """The views ``'raw'``, ``'val'`` (``model.val_cfg``) or ``'test'``
    (``model.test_cfg``) of a CALClassifier; refuses other models."""
    check_exportable(model)
    if name == 'raw':
        return dict(crops=[], flip=False)
    if name == 'val':
        return model.val_cfg
    if name == 'test':
        return model.test_cfg
    raise ValueError(f'views must be one of {VIEW_CHOICES}, got {name!r}')


def pipeline_image_size(pipeline) -> Tuple[int, int]:
    """(H, W) of the images a test pipeline produces.

    Runs the pipeline on two blank images of different shapes; a pipeline
    whose output size follows the input's (no crop, no fixed resize) has
    no single size to export.
    """
    from PIL import Image
    sizes = set()
    with tempfile.TemporaryDirectory() as folder:
        for width, height in ((640, 480), (400, 560)):
            path = osp.join(folder, f'{width}x{height}.png')
            Image.new('RGB', (width, height), (128, 128, 128)).save(path)
            sizes.add(tuple(pipeline(dict(img_path=path))['inputs'].shape))
    if len(sizes) != 1:
        raise ValueError(
            'The test pipeline gives images of varying size '
            f'{sorted(sizes)} (C, H, W); an exported model takes one size. '
            'Add a crop or a fixed Resize to the test pipeline, or pass '
            '--shape H W and resize the images to it yourself.')
    channels, height, width = sizes.pop()
    if channels != 3:
        raise ValueError(f'The test pipeline gives {channels}-channel '
                         'images; the model takes 3 channels')
    return height, width


def export_onnx(model: CALClassifier,
                path: str,
                image_size: Sequence[int],
                views: dict,
                opset: int = 17,
                classes: Optional[List[str]] = None):
    """Trace ``CALProbabilities(model, views)`` into an ONNX file.

    The batch dimension is dynamic; the image size is fixed. The class
    names, the views and the image size are stored in the metadata
    (``classes``, ``views``, ``image_size``, JSON).

    Args:
        model: a CALClassifier in eval mode, on the CPU.
        path: the ``.onnx`` file to write.
        image_size: (H, W) of the input.
        views: the views to average, as ``CALClassifier.test_cfg``.
        opset: ONNX opset, at least :data:`MIN_OPSET`.
        classes: the K class names, in label order.

    Returns:
        The exported ``onnx.ModelProto``.
    """
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} is too old: the graph needs ONNX '
                         f'opset {MIN_OPSET} or later (Einsum)')
    check_exportable(model)
    wrapper = CALProbabilities(model.eval(), views).eval()
    height, width = image_size
    # Two images: batch-dependent shapes are traced as such, not as
    # constants of a batch of one.
    example = torch.full((2, 3, height, width), 128.0)
    with warnings.catch_warnings(), torch.no_grad():
        # Shape checks of the Python code become constants: expected, and
        # pytorch2onnx.py checks the graph against PyTorch after export.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper, (example, ),
            path,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {
                    0: 'batch'
                },
                OUTPUT_NAME: {
                    0: 'batch'
                }
            })
    proto = onnx.load(path)
    metadata = dict(
        classes=list(classes) if classes else None,
        views=wrapper.views,
        image_size=[height, width],
        producer=f'mmcal {__version__}')
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    return proto
