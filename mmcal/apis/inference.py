"""Loading a trained classifier, feeding it image files, writing predictions.

Shared by ``tools/predict.py``, ``tools/visualize_attention.py`` and
``tools/deployment/onnx_predict.py``.
"""
import copy
import csv
import io
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from torch.utils.data import DataLoader, Dataset

from mmcal.utils.config import load_config

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                    '.tiff', '.webp')


def init_classifier(config: Union[str, Config],
                    checkpoint: str,
                    device: Union[str, torch.device] = 'cpu',
                    cfg_options: Optional[dict] = None):
    """Build the model of a config and load a checkpoint strictly.

    A checkpoint of another model fails with the keys at fault rather than
    predicting with a half-loaded model. The class names are taken from the
    checkpoint's ``meta.dataset_meta`` (written by the Runner), else from
    the config's test data set (see :func:`config_classes`).

    Returns:
        ``(model, cfg)``: the model in eval mode on ``device`` with
        ``model.dataset_meta`` set, and the config (options merged).
    """
    import mmcal  # noqa: F401  (registers mmcal's models and loader)
    from mmpretrain.registry import MODELS
    cfg = (load_config(config)
           if isinstance(config, str) else copy.deepcopy(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    # mmpretrain's tools take the top-level data preprocessor when the model
    # has none.
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        model = MODELS.build(cfg.model)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint file not found: {checkpoint}')
    loaded = load_checkpoint(
        model,
        checkpoint,
        map_location='cpu',
        strict=True,
        revise_keys=[(r'^module\.', '')])
    dataset_meta = dict(loaded.get('meta', {}).get('dataset_meta') or {})
    if not dataset_meta.get('classes'):
        classes = config_classes(cfg)
        if classes:
            dataset_meta['classes'] = classes
    model.dataset_meta = dataset_meta
    return model.to(device).eval(), cfg


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
        with open(classes) as file:
            return [line.strip() for line in file if line.strip()]
    if classes:
        return list(classes)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        dataset_class = DATASETS.get(dataset.get('type', ''))
    metainfo = getattr(dataset_class, 'METAINFO', {}) or {}
    return list(metainfo['classes']) if metainfo.get('classes') else None


def build_test_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline, taking ``dict(img_path=...)``."""
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        return Compose(cfg.test_dataloader.dataset.pipeline)


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
        images = []
        for folder, _, files in os.walk(source, followlinks=True):
            for file in files:
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    path = osp.join(folder, file)
                    name = osp.relpath(path, source).replace(os.sep, '/')
                    images.append((name, path))
        if not images:
            raise FileNotFoundError(
                f'No images ({", ".join(IMAGE_EXTENSIONS)}) in folder '
                f'{source}')
        return sorted(images)
    if not osp.isfile(source):
        raise FileNotFoundError(f'Input not found: {source}')
    if source.lower().endswith(IMAGE_EXTENSIONS):
        return [(osp.basename(source), source)]
    root = img_root if img_root is not None else osp.dirname(source)
    with open(source) as file:
        names = [line.strip() for line in file if line.strip()]
    if not names:
        raise ValueError(f'List file {source} names no images')
    return [(name, osp.join(root, name)) for name in names]


class ImageFiles(Dataset):
    """Image files through a test pipeline; errors name the file.

    Args:
        images: ``(name, path)`` pairs.
        pipeline: callable on ``dict(img_path=path)``.
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


def format_predictions(names: List[str], scores: torch.Tensor,
                       classes: List[str], fmt: str, topk: int) -> str:
    """The text of a prediction file.

    Args:
        names: the image names, in output order.
        scores: (N, K) class probabilities.
        classes: the K class names.
        fmt: ``'txt'`` (``<name> <class>`` lines, the bird set's
            ``answer.txt``), ``'csv'`` or ``'json'`` (top-k classes with
            their scores).
        topk: classes per image in csv / json.
    """
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
    writer = csv.writer(text, lineterminator='\n')
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
