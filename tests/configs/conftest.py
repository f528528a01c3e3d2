"""Config discovery, generated data sets and the overrides that point a
config at them and shrink it for the CPU."""
import glob
import os
import os.path as osp

import pytest
from mmcal_test_utils import write_image_folder, write_nabirds_files

from mmcal.datasets import write_bird_set, write_synthetic_birds
from mmcal.datasets.synthetic import class_names
from mmcal.runtime.runner import DATALOADERS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_ROOT = osp.join(REPO_ROOT, 'configs')
# Dataset types of the configs and the generated layout each one reads.
CUB_LAYOUT_TYPES = ('CheckedCUB', 'CUBFolder')
BIRD_SET_TYPES = ('BirdSet', )
IMAGENET_TYPES = ('ImageNet', )
NABIRDS_TYPES = ('NABirds', )
GENERATED_CLASSES = 2


def all_configs():
    """Every runnable config under configs/ (the _base_ parts excluded),
    relative to the repository root."""
    paths = glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)
    return sorted(
        osp.relpath(path, REPO_ROOT) for path in paths
        if '_base_' not in osp.relpath(path, CONFIG_ROOT).split(osp.sep))


@pytest.fixture(scope='session')
def data_roots(tmp_path_factory):
    """Both layouts, 2 classes with 2 training images each (2 iterations
    of batch 2 per epoch)."""
    root = tmp_path_factory.mktemp('config_data')
    cub_root = str(root / 'cub')
    write_synthetic_birds(
        cub_root, num_classes=GENERATED_CLASSES, per_class=3, size=64,
        test_fraction=0.3)
    birds_root = str(root / 'birds')
    # BirdSet keeps 3 images per class for validation: 2 left to train.
    write_bird_set(birds_root, num_classes=GENERATED_CLASSES, per_class=5,
                   num_test=2, size=64)
    imagenet_root = str(root / 'imagenet')
    write_imagenet_layout(imagenet_root, per_class=2, size=64)
    nabirds_root = str(root / 'nabirds')
    write_nabirds_layout(nabirds_root, per_class=3, size=64)
    return dict(cub=cub_root, birds=birds_root, imagenet=imagenet_root,
                nabirds=nabirds_root)


def write_imagenet_layout(root, per_class, size):
    """mmpretrain's ImageNet layout with annotation lists: ``train/`` and
    ``val/`` of GENERATED_CLASSES class folders and ``meta/train.txt``,
    ``meta/val.txt`` of "path label" lines (the ImageNet dataset reads
    class folders only if there are 1000 of them)."""
    os.makedirs(osp.join(root, 'meta'))
    for split in ('train', 'val'):
        images = write_image_folder(
            osp.join(root, split), num_classes=GENERATED_CLASSES,
            per_class=per_class, size=size)
        folders = sorted(os.listdir(images))
        lines = [
            f'{folder}/{name} {label}'
            for label, folder in enumerate(folders)
            for name in sorted(os.listdir(osp.join(images, folder)))
        ]
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as file:
            file.write('\n'.join(lines) + '\n')


def write_nabirds_layout(root, per_class, size):
    """The NABirds layout: GENERATED_CLASSES leaves of a taxonomy (ids
    non-contiguous, under one parent and the root), hex image ids; the
    first image of each class is a test image, the others train."""
    write_image_folder(
        osp.join(root, 'images'), num_classes=GENERATED_CLASSES,
        per_class=per_class, size=size)
    leaves = [100 + 7 * label for label in range(GENERATED_CLASSES)]
    rows = [(f'{len(leaves) * index + label:032x}',
             f'class_{label}/{index}.png', leaves[label], int(index > 0))
            for label in range(GENERATED_CLASSES)
            for index in range(per_class)]
    classes = {0: 'Birds', 5: 'Songbirds'}
    classes.update((leaf, f'Bird {leaf}') for leaf in leaves)
    write_nabirds_files(root, rows, classes,
                        {5: 0, **{leaf: 5 for leaf in leaves}})


def data_root_for(dataset_type, data_roots):
    if dataset_type in CUB_LAYOUT_TYPES:
        return data_roots['cub']
    if dataset_type in BIRD_SET_TYPES:
        return data_roots['birds']
    if dataset_type in IMAGENET_TYPES:
        return data_roots['imagenet']
    if dataset_type in NABIRDS_TYPES:
        return data_roots['nabirds']
    raise AssertionError(
        f'No generated data for dataset type {dataset_type!r}: add its '
        'layout to tests/configs/conftest.py')


def dataloader_overrides(cfg, data_roots, size=64, batch_size=2,
                         loaders=DATALOADERS):
    """``--cfg-options`` style overrides pointing the ``loaders`` of
    ``cfg`` at the generated data, at ``size`` px and ``batch_size``,
    without worker processes."""
    options = {}
    for loader in loaders:
        if not cfg.get(loader):
            continue
        dataset = cfg[loader].dataset
        prefix = f'{loader}.dataset.'
        options[prefix + 'data_root'] = data_root_for(dataset.type,
                                                      data_roots)
        if dataset.type == 'CheckedCUB':
            # CheckedCUB declares CUB's 200 species and refuses a folder
            # with another number of classes.
            options[prefix + 'metainfo.classes'] = class_names(
                GENERATED_CLASSES)
        for index, transform in enumerate(dataset.pipeline):
            if 'scale' in transform:
                # An int where the base has one: ResizeEdge takes no pair.
                scale = size + 8
                options[f'{prefix}pipeline.{index}.scale'] = (
                    scale if isinstance(transform.scale, int) else
                    (scale, scale))
            if 'crop_size' in transform:
                options[f'{prefix}pipeline.{index}.crop_size'] = size
        options[f'{loader}.batch_size'] = batch_size
        options[f'{loader}.num_workers'] = 0
        options[f'{loader}.persistent_workers'] = False
    head = cfg.get('model', {}).get('head', {})
    if 'num_classes' in head:
        # The generated sets have GENERATED_CLASSES classes;
        # DatasetCheckHook refuses a head of another size.
        options['model.head.num_classes'] = GENERATED_CLASSES
        # Top-5 of 2 classes does not exist (for the loaders in use).
        for evaluator in ('val_evaluator', 'test_evaluator'):
            loader = evaluator.replace('evaluator', 'dataloader')
            if loader in loaders and 'topk' in (cfg.get(evaluator) or {}):
                options[f'{evaluator}.topk'] = (1, )
    return options
