"""Loading a trained classifier and feeding it image files, the way
mmpretrain's ``get_model`` and ``ImageClassificationInferencer`` do, and
writing predictions.

Shared by ``tools/predict.py``, ``tools/visualize_attention.py`` and
``tools/deployment/onnx_predict.py``.
"""
import argparse
import copy
import csv
import io
import json
import os
import os.path as osp
import unicodedata
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from torch.utils.data import DataLoader, Dataset

from mmcal.apis.class_names import (FORBIDDEN_CATEGORIES, show_name,
                                    validate_class_names)
from mmcal.datasets.annotation_file import read_names
from mmcal.runtime.atomic_save import check_writable
from mmcal.runtime.checkpoint_loading import check_checkpoint_path
from mmcal.runtime.runner import load_config

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')


def init_classifier(config: Union[str, Config],
                    checkpoint: str,
                    device: Union[str, torch.device] = 'cpu',
                    cfg_options: Optional[dict] = None):
    """``mmpretrain.apis.get_model`` with strict loading.

    The model is built by ``get_model`` (so it carries ``_config`` and
    ``_dataset_meta`` as mmpretrain's inferencers expect), then the
    checkpoint is loaded strictly: a checkpoint of another model fails with
    the keys at fault rather than predicting with a half-loaded model
    (``get_model(pretrained=...)`` only warns). The class names are the
    checkpoint's ``meta.dataset_meta`` (written by the Runner), else the
    config's test data set's (see :func:`config_classes`), else those
    ``get_model`` found.

    Returns:
        The model in eval mode on ``device``, with ``model._config`` (the
        config, options merged) and ``model._dataset_meta`` set.
    """
    from mmpretrain.apis import get_model
    cfg = (load_config(config)
           if isinstance(config, str) else copy.deepcopy(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_checkpoint_path(checkpoint)
    model = get_model(cfg, pretrained=False)
    loaded = load_checkpoint(
        model,
        checkpoint,
        map_location='cpu',
        strict=True,
        revise_keys=[(r'^module\.', '')])
    dataset_meta = checkpoint_dataset_meta(loaded, checkpoint)
    if not dataset_meta.get('classes'):
        classes = config_classes(cfg) or model._dataset_meta.get('classes')
        if classes:
            dataset_meta['classes'] = validate_class_names(
                classes, f'{cfg.filename or "the config"}: the test data '
                'set\'s classes')
    model._dataset_meta = dataset_meta
    return model.to(device).eval()


def checkpoint_dataset_meta(loaded, path: str) -> dict:
    """A copy of ``meta.dataset_meta`` of a loaded checkpoint (``{}`` if it
    has none), its ``classes`` checked by :func:`validate_class_names`.

    Raises:
        ValueError: naming ``path`` and the key, when ``meta`` or
            ``dataset_meta`` is not a dict or the class names are not
            names.
    """
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ValueError(f'{path}: meta is a {type(meta).__name__}, not a '
                         'dict')
    dataset_meta = meta.get('dataset_meta')
    if dataset_meta is None:
        return {}
    if not isinstance(dataset_meta, dict):
        raise ValueError(f'{path}: meta.dataset_meta is a '
                         f'{type(dataset_meta).__name__}, not a dict')
    dataset_meta = dict(dataset_meta)
    if dataset_meta.get('classes') is not None:
        dataset_meta['classes'] = validate_class_names(
            dataset_meta['classes'], f'{path}: meta.dataset_meta.classes')
    return dataset_meta


def config_classes(cfg: Config) -> Optional[List[str]]:
    """Class names the config's test data set declares, if any.

    Looks at ``metainfo.classes`` and ``classes`` of the test data set,
    then at the data set class's ``METAINFO`` (e.g. mmpretrain's ``CUB``).
    """
    from mmpretrain.registry import DATASETS
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    classes = (dataset.get('metainfo') or {}).get('classes') or dataset.get(
        'classes')
    if isinstance(classes, str):  # a file of names, one per line
        return read_names(classes)
    if classes:
        return list(classes)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        dataset_class = DATASETS.get(dataset.get('type', ''))
    metainfo = getattr(dataset_class, 'METAINFO', {}) or {}
    return list(metainfo['classes']) if metainfo.get('classes') else None


def inference_pipeline(cfg: Config) -> Compose:
    """The pipeline ``ImageClassificationInferencer`` builds from ``cfg``,
    reading ``dict(img_path=...)``.

    As the inferencer does, ``LoadImageFromFile`` is removed from the
    config's test pipeline (with mmpretrain's ``remove_transform``) and the
    rest fed loaded images; here the image is loaded first by
    ``LoadImageSafely`` (errors name the file, every colour mode becomes
    BGR), and a ``LoadImageSafely`` of the config's pipeline then keeps the
    loaded image. It needs no model, so the ONNX tools use it too.
    """
    from mmpretrain.datasets import remove_transform
    from mmpretrain.registry import TRANSFORMS

    from mmcal.datasets.transforms import LoadImageSafely
    steps = remove_transform(cfg.test_dataloader.dataset.pipeline,
                             'LoadImageFromFile')
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        return Compose([LoadImageSafely(), *map(TRANSFORMS.build, steps)])


def collect_images(source: str,
                   img_root: Optional[str] = None) -> List[Tuple[str, str]]:
    """The images named by an image file, a folder or a list file.

    Args:
        source: an image file; a folder (its images, searched recursively,
            in sorted order); or a text file with one image name per line
            (e.g. the bird set's ``testing_img_order.txt``), in its order.
        img_root: folder the names of a list file are relative to (default:
            the list file's folder).

    Returns:
        ``(name, path)`` pairs: ``name`` as written to prediction files (the
        file name for one image, the path relative to the folder, or the
        list's line), ``path`` the file to read.
    """
    if osp.isdir(source):
        images = folder_images(source)
        if not images:
            raise FileNotFoundError(
                f'No images ({", ".join(IMAGE_EXTENSIONS)}) in folder '
                f'{source}')
        return images
    if not osp.isfile(source):
        raise FileNotFoundError(f'Input not found: {source}')
    if source.lower().endswith(IMAGE_EXTENSIONS):
        return [(osp.basename(source), source)]
    root = img_root if img_root is not None else osp.dirname(source)
    names = read_names(source)
    if not names:
        raise ValueError(f'List file {source} names no images')
    return [(name, osp.join(root, name)) for name in names]


def folder_images(folder: str) -> List[Tuple[str, str]]:
    """``(name, path)`` of the images under ``folder``, each real file once.

    Symbolic links are followed, but a folder whose real path was already
    walked is not entered again (a link to ``.`` or to a parent would loop
    forever, or list every image once per pass), and a file reached under
    several names is listed once, under its first name in sorted order.
    Names are relative to ``folder``, with ``/``.
    """
    seen_folders = set()
    seen_files = set()
    images = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        real_root = osp.realpath(root)
        if real_root in seen_folders:
            dirs[:] = []
            continue
        seen_folders.add(real_root)
        # Sorted, so that which of two names of one file is kept does not
        # depend on the file system's listing order.
        dirs[:] = sorted(
            name for name in dirs
            if osp.realpath(osp.join(root, name)) not in seen_folders)
        for file in sorted(files):
            if not file.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = osp.join(root, file)
            name = osp.relpath(path, folder).replace(os.sep, '/')
            images.append((name, path))
    unique = []
    for name, path in sorted(images):
        real_path = osp.realpath(path)
        if real_path not in seen_files:
            seen_files.add(real_path)
            unique.append((name, path))
    return unique


class ImageFiles(Dataset):
    """Image files through a test pipeline; errors name the file.

    Args:
        images: ``(name, path)`` pairs.
        pipeline: callable on ``dict(img_path=path)`` (see
            :func:`inference_pipeline`).
    """

    def __init__(self, images: Sequence[Tuple[str, str]], pipeline):
        self.images = list(images)
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        name, path = self.images[index]
        try:
            return self.pipeline(dict(img_path=path))
        except Exception as error:
            raise RuntimeError(
                f'Cannot read image {name} ({path}): {error}') from None


def image_loader(images: Sequence[Tuple[str, str]], pipeline,
                 batch_size: int, num_workers: int = 0) -> DataLoader:
    """Batches of :class:`ImageFiles` in input order, collated like the
    Runner's loaders (``pseudo_collate``)."""
    return DataLoader(
        ImageFiles(images, pipeline),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=pseudo_collate)


TXT_ADVICE = ('"<name> <class>" lines (the txt format) cannot hold it; '
              'write CSV or JSON instead (--out with .csv or .json, or '
              '--format csv/json)')


def unwritable_reason(name: str, fmt: str) -> Optional[str]:
    """Why a prediction file of format ``fmt`` cannot hold ``name``, or
    None.

    No format holds a lone surrogate (from a file name that is not UTF-8).
    ``txt`` lines are ``<name> <class>`` split at white space: an empty
    name, white space or a control character would make extra or ambiguous
    lines (CSV and JSON quote and escape them).
    """
    if any(unicodedata.category(character) == 'Cs' for character in name):
        return 'is not UTF-8 text: rename it'
    if fmt != 'txt':
        return None
    if not name:
        return f'is empty: {TXT_ADVICE}'
    for character in name:
        if character.isspace() or unicodedata.category(
                character) in FORBIDDEN_CATEGORIES:
            return f'holds {ascii(character)}: {TXT_ADVICE}'
    return None


def check_output_names(names: Sequence[str], classes: Sequence[str],
                       fmt: str) -> None:
    """Refuse image and class names a prediction file of format ``fmt``
    cannot hold (see :func:`unwritable_reason`); tools run it before
    predicting.

    Raises:
        ValueError: naming the first such name and why.
    """
    for kind, values in (('Image', names), ('Class', classes)):
        for name in values:
            reason = unwritable_reason(name, fmt)
            if reason is not None:
                raise ValueError(f'{kind} name {show_name(name)} {reason}')


def format_predictions(names: List[str], scores: torch.Tensor,
                       classes: List[str], fmt: str, topk: int) -> str:
    """The text of a prediction file.

    Args:
        names: the image names, in output order.
        scores: (N, K) class probabilities.
        classes: the K class names.
        fmt: ``'txt'`` (``<name> <class>`` lines, the bird set's
            ``answer.txt``), ``'csv'`` (RFC 4180: CRLF line ends, a name
            with a comma, a quote or a line break quoted) or ``'json'``
            (top-k classes with their scores).
        topk: classes per image in csv / json.

    Raises:
        ValueError: a name the format cannot hold
            (:func:`check_output_names`).
    """
    check_output_names(names, classes, fmt)
    if fmt == 'txt':
        labels = scores.argmax(dim=1).tolist()
        return ''.join(f'{name} {classes[label]}\n'
                       for name, label in zip(names, labels))
    topk = min(topk, scores.shape[1])
    values, labels = scores.topk(topk, dim=1)
    if fmt == 'json':
        records = [
            dict(
                file=name,
                predictions=[
                    dict(label=label, **{'class': classes[label]}, score=value)
                    for label, value in zip(top_labels, top_values)
                ]) for name, top_labels, top_values in zip(
                    names, labels.tolist(), values.tolist())
        ]
        return json.dumps(records, indent=1) + '\n'
    text = io.StringIO()
    # RFC 4180's CRLF line ends: with them the csv module quotes a name
    # holding a CR as well as one holding an LF (with '\n' it would not).
    writer = csv.writer(text, lineterminator='\r\n')
    writer.writerow(['file'] + [
        column for rank in range(1, topk + 1)
        for column in (f'class_{rank}', f'score_{rank}')
    ])
    for name, top_labels, top_values in zip(names, labels.tolist(),
                                            values.tolist()):
        writer.writerow([name] + [
            cell for label, value in zip(top_labels, top_values)
            for cell in (classes[label], f'{value:.6g}')
        ])
    return text.getvalue()


PREDICTION_FORMATS = ('txt', 'csv', 'json')


def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    """The inputs and outputs of ``tools/predict.py`` and
    ``tools/deployment/onnx_predict.py``, which take the same ones; check
    them with :func:`check_prediction_arguments` after parsing."""
    parser.add_argument(
        'input',
        help='an image, a folder of images, or a list file with one image '
        'name per line')
    parser.add_argument('--out', required=True, help='output file')
    parser.add_argument(
        '--format',
        choices=PREDICTION_FORMATS,
        help='txt: "<file name> <class name>" lines (answer.txt); csv / '
        'json: top-k classes and scores (default: from the extension of '
        '--out, txt otherwise)')
    parser.add_argument(
        '--topk', type=int, default=5, help='classes per image in csv/json')
    parser.add_argument(
        '--img-root',
        help='folder the names of a list file are relative to (default: '
        'the list file\'s folder)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--num-workers', type=int, default=0)


def check_prediction_arguments(parser: argparse.ArgumentParser,
                               args: argparse.Namespace) -> None:
    """Fill ``--format`` from the extension of ``--out``; refuse a
    non-positive ``--topk`` or ``--batch-size``, and an ``--out`` that
    cannot be written (:func:`check_writable`), before any work."""
    try:
        check_writable(args.out)
    except ValueError as error:
        parser.error(str(error))
    if args.format is None:
        extension = osp.splitext(args.out)[1].lower().lstrip('.')
        args.format = extension if extension in PREDICTION_FORMATS else 'txt'
    if args.topk < 1 or args.batch_size < 1:
        parser.error('--topk and --batch-size must be positive')
