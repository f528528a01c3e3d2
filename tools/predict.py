"""Predict the classes of unlabelled images with a trained model.

Writes, in input order, the bird project's ``answer.txt`` format (``<file
name> <class name>`` per line) or, for ``.csv`` / ``.json`` outputs, the
top-k classes with their scores. The views (raw image, attention crops,
flip) are the config's ``model.test_cfg`` unless overridden here. The output
path, the class names and the names the format must hold are checked before
the first image is read; the output file appears only once every image is
predicted.

Example::

    python tools/predict.py configs/cal_r152_birds.py best.pth \\
        data/birds/testing_img_order.txt \\
        --img-root data/birds/testing_images --out answer.txt
"""
import argparse
from typing import List, Optional

import torch
from mmengine.config import DictAction
from mmengine.utils import ProgressBar

from mmcal.apis import (add_prediction_arguments, check_class_names,
                        check_output_names, check_prediction_arguments,
                        collect_images, format_predictions, image_loader,
                        inference_pipeline, init_classifier,
                        validate_class_names)
from mmcal.datasets.annotation_file import read_names
from mmcal.models import CALClassifier
from mmcal.runtime import add_unsafe_load_argument, unsafe_load_scope
from mmcal.runtime.atomic_save import write_atomically
from mmcal.runtime.devices import check_device
from mmcal.runtime.finite_scores import check_finite_scores


def parse_crops(values: List[str]) -> list:
    """``['0.3,0.1', '0.2,0.1']`` or ``['0.3,0.1 0.2,0.1']`` -> pairs."""
    crops = []
    for item in ' '.join(values).split():
        try:
            theta, padding = (float(value) for value in item.split(','))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'--crops takes THETA,PADDING pairs, got {item!r}') from None
        crops.append((theta, padding))
    return crops


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Predict classes of image files')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_prediction_arguments(parser)
    parser.add_argument(
        '--classes',
        help='file with one class name per line, in label order (default: '
        'the checkpoint\'s or the config\'s class names)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--crops',
        nargs='*',
        metavar='THETA,PADDING',
        help='crop views, e.g. --crops 0.3,0.1 0.2,0.1 0.1,0.05 (no value: '
        'raw image only; default: the config\'s model.test_cfg.crops)')
    parser.add_argument(
        '--flip',
        action=argparse.BooleanOptionalAction,
        help='also average over the flipped image (default: the config\'s '
        'model.test_cfg.flip)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. model.test_cfg.flip=True')
    add_unsafe_load_argument(parser)
    args = parser.parse_args(argv)
    if args.crops is not None:
        try:
            args.crops = parse_crops(args.crops)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    check_prediction_arguments(parser, args)
    return args


def predict_scores(model, loader, views: dict, progress: bool = True):
    """(N, K) class probabilities of every image the loader yields;
    ``views`` as CALClassifier's ``test_cfg``, None for other models."""
    scores = []
    bar = ProgressBar(len(loader.dataset)) if progress else None
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            samples = (model.predict(data['inputs'], views=views)
                       if views is not None else model.predict(data['inputs']))
            scores.append(torch.stack([s.pred_score for s in samples]).cpu())
            if bar is not None:
                bar.update(len(samples))
    if bar is not None:
        print()
    return torch.cat(scores).float()


@unsafe_load_scope()
def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    images = collect_images(args.input, args.img_root)
    check_device(args.device)
    model = init_classifier(args.config, args.checkpoint, args.device,
                            args.cfg_options)
    classes = check_class_names(
        validate_class_names(read_names(args.classes), args.classes)
        if args.classes else model._dataset_meta.get('classes'),
        model.head.num_classes, 'pass --classes FILE')
    names = [name for name, _ in images]
    check_output_names(names, classes, args.format)
    if not isinstance(model, CALClassifier):
        # A plain mmpretrain classifier has one view.
        if args.crops is not None or args.flip is not None:
            raise ValueError(
                f'--crops and --flip need a CALClassifier; {args.config} '
                f'builds a {type(model).__name__}')
        views = None
    else:
        views = dict(model.test_cfg)
        if args.crops is not None:
            views['crops'] = args.crops
        if args.flip is not None:
            views['flip'] = args.flip
    loader = image_loader(images, inference_pipeline(model._config),
                          args.batch_size, args.num_workers)
    scores = predict_scores(model, loader, views)
    check_finite_scores(scores, names, args.checkpoint)
    write_atomically(
        format_predictions(names, scores, classes, args.format, args.topk),
        args.out)
    print(f'Predictions of {len(names)} images written to {args.out}')
    return args.out


if __name__ == '__main__':
    main()
