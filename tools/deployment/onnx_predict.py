"""Predict the classes of image files with an exported ONNX model.

The same inputs (an image, a folder, a list file) and outputs (``answer.txt``
lines, or top-k CSV / JSON) as ``tools/predict.py``, computed by
onnxruntime from a file written by ``tools/deployment/pytorch2onnx.py``: no
PyTorch model is built. The config gives the test pipeline (loading,
resizing, cropping); the views, the normalisation and the class names are
those stored in the ONNX file, checked against the graph when it is opened.
The output path and the names the format must hold are checked before the
first image is read; the output file appears only once every image is
predicted.

Example::

    python tools/deployment/onnx_predict.py configs/cal_r152_birds.py \\
        cal_r152_birds.onnx data/birds/testing_img_order.txt \\
        --img-root data/birds/testing_images --out answer.txt
"""
import argparse
from typing import List, Optional

import numpy as np
import torch
from mmengine.config import DictAction

from mmcal.apis import (add_prediction_arguments, check_output_names,
                        check_prediction_arguments, collect_images,
                        format_predictions, image_loader, inference_pipeline)
from mmcal.deployment import ONNXClassifier, stack_inputs
from mmcal.runtime.atomic_save import write_atomically
from mmcal.runtime.runner import load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Predict classes of image files with an ONNX model')
    parser.add_argument('config', help='config file (its test pipeline)')
    parser.add_argument('model', help='.onnx file from pytorch2onnx.py')
    add_prediction_arguments(parser)
    parser.add_argument(
        '--threads', type=int, help='onnxruntime threads (default: its own)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys of the test pipeline')
    args = parser.parse_args(argv)
    check_prediction_arguments(parser, args)
    return args


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    images = collect_images(args.input, args.img_root)
    classifier = ONNXClassifier(args.model, args.threads)
    if not classifier.classes:
        raise ValueError(f'{args.model} holds no class names')
    check_output_names([name for name, _ in images], classifier.classes,
                       args.format)
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    loader = image_loader(images, inference_pipeline(cfg), args.batch_size,
                          args.num_workers)
    scores, done = [], 0
    for batch in loader:
        names = [name for name, _ in images[done:done + len(batch['inputs'])]]
        scores.append(
            classifier(
                stack_inputs(batch['inputs'], names, classifier.image_size)))
        done += len(names)
    names = [name for name, _ in images]
    write_atomically(
        format_predictions(names, torch.from_numpy(np.concatenate(scores)),
                           classifier.classes, args.format, args.topk),
        args.out)
    print(f'Predictions of {len(names)} images written to {args.out}')
    return args.out


if __name__ == '__main__':
    main()
