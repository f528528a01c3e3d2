"""Export a trained CAL classifier, test views included, to ONNX.

The graph takes what the data preprocessor receives from the config's test
pipeline, stacked: a float32 (B, 3, H, W) batch of 0-255 pixels in the
pipeline's channel order (BGR for mmpretrain's image loaders). Channel swap,
normalisation, the attention crops (thresholds, boxes, resize) and the flip
run inside; the output is (B, K) class probabilities, equal to the PyTorch
model's ``predict`` with the chosen views. The batch size is dynamic. The
export is checked against PyTorch with onnxruntime before the tool returns.

Example::

    python tools/deployment/pytorch2onnx.py configs/cal_r152_birds.py \\
        work_dirs/cal_r152_birds/best.pth --out cal_r152_birds.onnx
"""
import argparse
from typing import List, Optional

import numpy as np
import torch
from mmengine.config import DictAction

from mmcal.apis import check_class_names, inference_pipeline, init_classifier
from mmcal.deployment import (MIN_OPSET, ONNXClassifier, export_onnx,
                              pipeline_image_size, select_views)
from mmcal.deployment.export import VIEW_CHOICES, CALProbabilities
from mmcal.runtime import add_unsafe_load_argument, unsafe_load_scope
from mmcal.runtime.finite_scores import check_finite_scores

# Largest difference to PyTorch accepted by the check after export.
TOLERANCE = 1e-4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a CAL classifier to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input height and width (default: the size the config\'s '
        'test pipeline gives)')
    parser.add_argument(
        '--opset', type=int, default=17, help='ONNX opset version')
    parser.add_argument(
        '--views',
        choices=VIEW_CHOICES,
        default='test',
        help='views averaged in the graph: raw image only, the model\'s '
        'val_cfg, or its test_cfg (default; the recipes: raw + 3 attention '
        'crops, and the same for the flipped image)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. model.test_cfg.flip=False')
    add_unsafe_load_argument(parser)
    args = parser.parse_args(argv)
    if args.opset < MIN_OPSET:
        parser.error(f'--opset must be at least {MIN_OPSET}, got '
                     f'{args.opset}')
    if args.shape and min(args.shape) < 1:
        parser.error(f'--shape must be positive, got {args.shape}')
    return args


def random_batch(image_size) -> torch.Tensor:
    """A seeded (3, 3, H, W) batch of 0-255 pixels for the check after
    export (the export traced a batch of two)."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, *image_size, generator=generator) * 255


@unsafe_load_scope()
def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    model = init_classifier(args.config, args.checkpoint, 'cpu',
                            args.cfg_options)
    views = select_views(model, args.views)
    classes = check_class_names(
        model._dataset_meta.get('classes'), model.head.num_classes,
        'name them with --cfg-options test_dataloader.dataset.classes=FILE')
    if args.shape:
        image_size = tuple(args.shape)
    else:
        image_size = pipeline_image_size(inference_pipeline(model._config))
    images = random_batch(image_size)
    with torch.no_grad():
        expected = CALProbabilities(model, views)(images)
    # A diverged model is refused before a file is written.
    check_finite_scores(expected, [f'random image {i}' for i in (1, 2, 3)],
                        args.checkpoint)
    export_onnx(model, args.out, image_size, views, args.opset, classes)
    got = ONNXClassifier(args.out)(images.numpy())
    difference = float(np.abs(got - expected.numpy()).max())
    if not difference <= TOLERANCE:  # NaN included
        raise RuntimeError(
            f'{args.out} differs from PyTorch by {difference:.2e} (more '
            f'than {TOLERANCE}) on a random batch')
    session = ONNXClassifier(args.out).session
    print(f'Wrote {args.out} (opset {args.opset}, {len(classes)} class '
          f'names in its metadata), views {views}')
    for kind, values in (('input', session.get_inputs()),
                         ('output', session.get_outputs())):
        for value in values:
            print(f'  {kind:6} {value.name}: {value.type} {value.shape}')
    print(f'  onnxruntime vs PyTorch on a random batch of 3: max difference '
          f'{difference:.1e}')
    return args.out


if __name__ == '__main__':
    main()
