import logging
from typing import Optional

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


@HOOKS.register_module()
class DatasetCheckHook(Hook):
    """Check the data sets against each other and the model up front.

    Before training it checks the training and validation sets, before
    testing the test set (see :func:`check_dataset`), so that a label out of
    range, a class list of the wrong length, mismatched class folders or an
    empty split fail at once, naming the dataset, file and value, instead of
    as a device-side assertion hours into a run. It reads annotations only,
    never images or the model's tensors.

    A loader whose ``dataset`` is not a PyTorch ``Dataset`` is skipped, with
    an info message: tools such as mmpretrain's ``vis_scheduler.py`` run a
    Runner over a stand-in (a ``MagicMock``) to trace the schedule, and
    there is no data to check.
    """

    priority = 'VERY_HIGH'

    def _check(self, loop, split: str, num_classes: Optional[int]) -> None:
        dataset = getattr(loop.dataloader, 'dataset', None)
        if not isinstance(dataset, Dataset):
            print_log(
                f'DatasetCheckHook: the {split} loader holds no dataset '
                f'({type(dataset).__name__}); nothing to check',
                logger='current',
                level=logging.INFO)
            return
        check_dataset(dataset, split, num_classes)

    def before_train(self, runner) -> None:
        num_classes = model_num_classes(runner.model)
        self._check(runner.train_loop, 'train', num_classes)
        if runner.val_loop is not None:
            self._check(runner.val_loop, 'val', num_classes)

    def before_test(self, runner) -> None:
        self._check(runner.test_loop, 'test',
                    model_num_classes(runner.model))
