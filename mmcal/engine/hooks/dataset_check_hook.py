import logging
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS
from torch.utils.data import Dataset

from mmcal.datasets.dataset_errors import (describe_dataset,
                                           empty_dataset_message)

# How many faulty samples an error lists before summarising the rest.
MAX_LISTED = 5


def model_num_classes(model) -> Optional[int]:
    """``head.num_classes`` of a (possibly wrapped) classifier, if any."""
    if is_model_wrapper(model):
        model = model.module
    return getattr(getattr(model, 'head', None), 'num_classes', None)


def check_folder_classes(dataset, split: str) -> None:
    """Folder names of a class-folder ``CustomDataset`` vs its ``classes``.

    mmpretrain labels folders by their sorted order and only compares
    counts with a given ``classes`` list, so a misspelled or reordered list
    would silently mislabel every image.
    """
    folder_to_idx = getattr(dataset, 'folder_to_idx', None)
    classes = dataset.metainfo.get('classes')
    if not folder_to_idx or not classes:
        return
    unknown = sorted(set(folder_to_idx) - set(classes))
    if unknown:
        raise ValueError(
            f'The {split} dataset {describe_dataset(dataset)} has class '
            f'folders {unknown} that are not in its class list {list(classes)}'
        )
    moved = [
        name for name, index in folder_to_idx.items() if classes[index] != name
    ]
    if moved:
        raise ValueError(
            f'The {split} dataset {describe_dataset(dataset)} labels its '
            'class folders in sorted order, but its class list orders '
            f'{moved} differently: list the classes in sorted folder order')


def check_class_names(dataset, split: str, classes: Sequence[str],
                      source: str) -> None:
    """The class names of a split vs ``classes``, those the model's outputs
    stand for (the training set's, named ``source`` in the error).

    Each split numbers its labels over its own class list, so a name
    missing, added or moved there gives a label another class: validation
    would measure the wrong thing without an error.
    """
    names = dataset.metainfo.get('classes')
    if not names or list(names) == list(classes):
        return
    where = f'The {split} dataset {describe_dataset(dataset)}'
    added = [name for name in names if name not in classes]
    missing = [name for name in classes if name not in names]
    if added:
        lacks = f' and lacks its classes {listed(missing)}' if missing else ''
        raise ValueError(
            f'{where} has classes {listed(added)} that {source} does not '
            f"have{lacks}: its labels would name other classes than the "
            f"model's outputs. Give the {split} set the classes of {source}")
    if missing:
        raise ValueError(
            f'{where} lacks the classes {listed(missing)} of {source}: it '
            f'numbers its labels over its own {len(names)} classes, so they '
            f"would name other classes than the model's {len(classes)} "
            f'outputs. Keep model.head.num_classes={len(classes)} and '
            f'{same_classes_advice(dataset, missing, source)}')
    moved = [
        index for index, (name, expected) in enumerate(zip(names, classes))
        if name != expected
    ]
    if moved:
        raise ValueError(
            f'{where} lists the classes of {source} in another order: class '
            f'{moved[0]} is {names[moved[0]]!r} there and '
            f'{classes[moved[0]]!r} in {source}')
    raise ValueError(
        f'{where} has {len(names)} class names and {source} '
        f'{len(classes)}, the same names repeated')


def listed(names: List[str]) -> str:
    """The first ``MAX_LISTED`` names, and how many more there are."""
    more = len(names) - MAX_LISTED
    return str(names[:MAX_LISTED]) + (f' and {more} more' if more > 0 else '')


def same_classes_advice(dataset, missing: List[str], source: str) -> str:
    """How a split that lacks classes gets the full class list."""
    if getattr(dataset, 'folder_to_idx', None):
        folders = [osp.join(dataset.img_prefix, name) for name in missing]
        return (f'add the empty class folders {listed(folders)}: '
                "mmpretrain's CustomDataset numbers the class folders it "
                'finds, in sorted order, and refuses a classes= list of '
                'another length')
    return (f'give the split the class list of {source} (its metainfo '
            'classes), with labels numbered over it')


def check_dataset(dataset, split: str, num_classes: Optional[int]) -> None:
    """Raise ``ValueError`` naming what is wrong with a dataset.

    Checks that it is not empty, that its class list has ``num_classes``
    names, that class folders match the class list and that every
    ``gt_label`` lies in [0, K). Samples without a label (an unlabelled test
    set) are accepted.
    """
    if len(dataset) == 0:
        raise ValueError(empty_dataset_message(dataset, split))
    classes = dataset.metainfo.get('classes')
    if classes is not None and num_classes is not None \
            and len(classes) != num_classes:
        raise ValueError(
            f'The {split} dataset {describe_dataset(dataset)} has '
            f'{len(classes)} classes but the model has num_classes='
            f'{num_classes}: set model.head.num_classes={len(classes)} or '
            'fix the class list')
    check_folder_classes(dataset, split)
    num_labels = len(classes) if classes is not None else num_classes
    if num_labels is None:
        return
    faulty = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        if 'gt_label' not in info:
            continue
        labels = np.asarray(info['gt_label']).reshape(-1)
        if ((labels < 0) | (labels >= num_labels)).any():
            faulty.append(f'sample {index} ({info.get("img_path", "?")}): '
                          f'label {labels.tolist()}')
    if faulty:
        more = len(faulty) - MAX_LISTED
        listed = '; '.join(
            faulty[:MAX_LISTED]) + (f'; and {more} more' if more > 0 else '')
        raise ValueError(
            f'The {split} dataset {describe_dataset(dataset)} has labels '
            f'outside [0, {num_labels}): {listed}')


def loop_dataset(loop, split: str) -> Optional[Dataset]:
    """The dataset of a loop's dataloader, or ``None`` (logged) when the
    loader holds no PyTorch ``Dataset`` to check."""
    dataset = getattr(loop.dataloader, 'dataset', None)
    if isinstance(dataset, Dataset):
        return dataset
    print_log(
        f'DatasetCheckHook: the {split} loader holds no dataset '
        f'({type(dataset).__name__}); nothing to check',
        logger='current',
        level=logging.INFO)
    return None


def checkpoint_classes(checkpoint) -> Optional[List[str]]:
    """``meta.dataset_meta.classes`` of a checkpoint: the classes of the
    set it was trained on, as mmengine's Runner saves them."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    dataset_meta = meta.get('dataset_meta') if isinstance(meta,
                                                          dict) else None
    classes = dataset_meta.get('classes') if isinstance(
        dataset_meta, dict) else None
    if isinstance(classes, (list, tuple)) and classes and all(
            isinstance(name, str) for name in classes):
        return list(classes)
    return None


@HOOKS.register_module()
class DatasetCheckHook(Hook):
    """Check the data sets against each other and the model up front.

    Before training it checks the training and validation sets, before
    testing the test set (see :func:`check_dataset`), so that a label out of
    range, a class list of the wrong length, mismatched class folders or an
    empty split fail at once, naming the dataset, file and value, instead of
    as a device-side assertion hours into a run. The validation set's class
    names must be the training set's, the test set's those of the loaded
    checkpoint (its ``meta.dataset_meta``) or of the training set
    (:func:`check_class_names`). It reads annotations only, never images or
    the model's tensors.

    A loader whose ``dataset`` is not a PyTorch ``Dataset`` is skipped, with
    an info message: tools such as mmpretrain's ``vis_scheduler.py`` run a
    Runner over a stand-in (a ``MagicMock``) to trace the schedule, and
    there is no data to check.
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        # The class names the model's outputs stand for, and their source.
        self.model_classes = None

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        classes = checkpoint_classes(checkpoint)
        if classes:
            self.model_classes = (classes, 'the checkpoint\'s training set '
                                  '(meta.dataset_meta.classes)')

    def before_train(self, runner) -> None:
        num_classes = model_num_classes(runner.model)
        train = loop_dataset(runner.train_loop, 'train')
        val = None
        if runner.val_loop is not None:
            val = loop_dataset(runner.val_loop, 'val')
        # The train set defines the classes of a training run (a
        # checkpoint loaded to fine-tune may have had others).
        if train is not None and train.metainfo.get('classes'):
            self.model_classes = (list(train.metainfo['classes']),
                                  'the train dataset')
            # Names first: a class missing from one split also changes its
            # class count, and the count's remedy would be the wrong one.
            if val is not None:
                check_class_names(val, 'val', *self.model_classes)
        for split, dataset in (('train', train), ('val', val)):
            if dataset is not None:
                check_dataset(dataset, split, num_classes)

    def before_test(self, runner) -> None:
        test = loop_dataset(runner.test_loop, 'test')
        if test is None:
            return
        if self.model_classes:
            check_class_names(test, 'test', *self.model_classes)
        check_dataset(test, 'test', model_num_classes(runner.model))
