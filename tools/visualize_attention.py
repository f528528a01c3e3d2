"""Draw the attention of a trained CAL model on images.

For each image one PNG: the image, its mean attention as a heatmap overlay,
the M attention maps, and the attention crop and drop a training step
would make (maps drawn as in training with a fixed seed, thresholds at the
middle of the training ranges). The title gives the predicted class.

Example::

    python tools/visualize_attention.py configs/cal_r101_cub_448.py \\
        epoch_160.pth data/CUB_200_2011/images/001.*/*.jpg --out-dir vis
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch
from mmengine.config import DictAction
from mmengine.utils import ProgressBar
from PIL import Image

from mmcal.apis import (collect_images, image_loader, inference_pipeline,
                        init_classifier)
from mmcal.runtime import add_unsafe_load_argument, unsafe_load_scope
from mmcal.runtime.devices import check_device
from mmcal.runtime.finite_scores import check_finite_scores
from mmcal.visualization import attention_views, draw_view_figure


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw attention maps, crops and drops of images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        'images', nargs='+', help='image files, folders or list files')
    parser.add_argument('--out-dir', required=True, help='folder for PNGs')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the crop/drop map draw')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys')
    add_unsafe_load_argument(parser)
    return parser.parse_args(argv)


@unsafe_load_scope()
def main(argv: Optional[List[str]] = None) -> List[str]:
    args = parse_args(argv)
    images = [item for source in args.images
              for item in collect_images(source)]
    check_device(args.device)
    model = init_classifier(args.config, args.checkpoint, args.device,
                            args.cfg_options)
    classes = model._dataset_meta.get('classes')
    loader = image_loader(images, inference_pipeline(model._config),
                          args.batch_size)
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    # predict.py's bar, on the stdout of the call rather than of the import.
    bar = ProgressBar(len(images), file=sys.stdout)
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            views = attention_views(model, data['inputs'], args.seed)
            predictions = model.predict(data['inputs'])
            first = len(written)
            names = [
                name for name, _ in images[first:first + len(predictions)]
            ]
            check_finite_scores(
                torch.stack([p.pred_score for p in predictions]), names,
                args.checkpoint)
            for index, (name, prediction) in enumerate(
                    zip(names, predictions)):
                label = int(prediction.pred_label)
                label_name = classes[label] if classes else str(label)
                score = float(prediction.pred_score[label])
                picture = draw_view_figure(
                    views, index, f'{name}: {label_name} ({score:.2f})')
                stem = osp.splitext(name)[0].replace('/', '_')
                path = osp.join(args.out_dir, f'{stem}.png')
                if path in written:  # same file name from two folders
                    path = osp.join(args.out_dir, f'{stem}_{len(written)}.png')
                Image.fromarray(picture).save(path)
                written.append(path)
                bar.update()
    print()
    print(f'{len(written)} pictures written to {args.out_dir}')
    return written


if __name__ == '__main__':
    main()
