import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .annotation_file import image_name_key, read_annotation_lines


def _check_unique(path: str,
                  number: int,
                  name: str,
                  seen: Dict[str, int],
                  what: str,
                  key: Optional[str] = None) -> None:
    """Record ``name`` of ``path:number`` under ``key`` (default: the name
    itself), refusing one already seen."""
    key = name if key is None else key
    if key in seen:
        raise ValueError(f'{path}:{number}: duplicate {what} {name!r} '
                         f'(first on line {seen[key]})')
    seen[key] = number


def _check_image(path: str, number: int, image_path: str) -> None:
    if not osp.isfile(image_path):
        # isfile follows links and is False for FIFOs and devices too.
        why = ('is not a regular file'
               if osp.exists(image_path) else 'does not exist')
        raise ValueError(f'{path}:{number}: image file {image_path} {why}')


@DATASETS.register_module()
class BirdSet(BaseDataset):
    """The 200-bird set of 3000 labelled images, read from its own files.

    Layout (under ``data_root``)::

        classes.txt              one class name per line; line order = label
        training_labels.txt      "<file name> <class name>" per line
        testing_img_order.txt    one file name per line, no labels
        training_images/         the labelled images
        testing_images/          the test images

    Splits: ``'train'`` and ``'val'`` divide the labelled images per class:
    ``val_per_class`` images of every class, picked by a random permutation
    seeded with ``split_seed``, are the validation set and the rest the
    training set (no image is in both). ``'trainval'`` is every labelled
    image. ``'test'`` is ``testing_img_order.txt`` in its order, without
    ``gt_label``.

    Args:
        data_root: folder of the set.
        split: ``'train'``, ``'val'``, ``'trainval'`` or ``'test'``.
        val_per_class: validation images per class; every class needs more
            labelled images than this.
        split_seed: seed of the train/val permutation.
        train_folder: folder of the labelled images, under ``data_root``.
        test_folder: folder of the test images, under ``data_root``.
        allow_outside_root: accept file names that leave their image
            folder (``../x.jpg``, absolute paths); by default they are
            refused, so that a list cannot add images of another split or
            from outside the set.
        **kwargs: other ``BaseDataset`` arguments (pipeline, ...).

    Raises:
        ValueError: naming the file and line of an unknown class name, a
            missing image, a duplicate file (names compared normalised:
            ``x.jpg`` and ``./x.jpg`` are one file) or class name, a file
            name leaving its folder, or a malformed line; or a class with
            too few images for ``val_per_class``.
    """

    SPLITS = ('train', 'val', 'trainval', 'test')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 val_per_class: int = 3,
                 split_seed: int = 0,
                 train_folder: str = 'training_images',
                 test_folder: str = 'testing_images',
                 allow_outside_root: bool = False,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'BirdSet split must be one of {self.SPLITS}, '
                             f'got {split!r}')
        if val_per_class < 0:
            raise ValueError(
                f'val_per_class must be >= 0, got {val_per_class}')
        self.split = split
        self.val_per_class = val_per_class
        self.split_seed = split_seed
        self.train_folder = train_folder
        self.test_folder = test_folder
        self.allow_outside_root = allow_outside_root
        classes = self._read_classes(osp.join(data_root, 'classes.txt'))
        super().__init__(
            ann_file='',
            data_root=data_root,
            metainfo=dict(classes=classes),
            **kwargs)

    @staticmethod
    def _read_classes(path: str) -> Tuple[str, ...]:
        seen: Dict[str, int] = {}
        for number, name in read_annotation_lines(path):
            if len(name.split()) != 1:
                raise ValueError(f'{path}:{number}: a class name must not '
                                 f'contain spaces, got {name!r}')
            _check_unique(path, number, name, seen, 'class name')
        return tuple(seen)

    def _name_key(self, path: str, number: int, name: str) -> str:
        return image_name_key(path, number, name, self.allow_outside_root)

    def _labelled(self) -> List[dict]:
        path = osp.join(self.data_root, 'training_labels.txt')
        labels = {name: label for label, name in enumerate(self.CLASSES)}
        seen: Dict[str, int] = {}
        samples = []
        for number, line in read_annotation_lines(path):
            fields = line.split()
            if len(fields) != 2:
                raise ValueError(f'{path}:{number}: expected "<file name> '
                                 f'<class name>", got {line!r}')
            file_name, class_name = fields
            if class_name not in labels:
                raise ValueError(f'{path}:{number}: unknown class name '
                                 f'{class_name!r} (not in classes.txt)')
            _check_unique(path, number, file_name, seen, 'file',
                          self._name_key(path, number, file_name))
            image_path = osp.join(self.data_root, self.train_folder,
                                  file_name)
            _check_image(path, number, image_path)
            samples.append(
                dict(img_path=image_path, gt_label=labels[class_name]))
        return samples

    def _validation_mask(self, samples: List[dict]) -> np.ndarray:
        """True for the ``val_per_class`` validation images of each class."""
        by_class = defaultdict(list)
        for index, sample in enumerate(samples):
            by_class[sample['gt_label']].append(index)
        rng = np.random.default_rng(self.split_seed)
        mask = np.zeros(len(samples), dtype=bool)
        for label in sorted(by_class):
            indices = sorted(by_class[label],
                             key=lambda i: samples[i]['img_path'])
            if len(indices) <= self.val_per_class:
                raise ValueError(
                    f'Class {self.CLASSES[label]!r} has {len(indices)} '
                    f'labelled images, too few for val_per_class='
                    f'{self.val_per_class}')
            picked = rng.permutation(len(indices))[:self.val_per_class]
            mask[[indices[i] for i in picked]] = True
        return mask

    def _test(self) -> List[dict]:
        path = osp.join(self.data_root, 'testing_img_order.txt')
        seen: Dict[str, int] = {}
        samples = []
        for number, line in read_annotation_lines(path):
            if len(line.split()) != 1:
                raise ValueError(
                    f'{path}:{number}: expected one file name, got {line!r}')
            _check_unique(path, number, line, seen, 'file',
                          self._name_key(path, number, line))
            image_path = osp.join(self.data_root, self.test_folder, line)
            _check_image(path, number, image_path)
            samples.append(dict(img_path=image_path))
        return samples

    def load_data_list(self) -> List[dict]:
        if self.split == 'test':
            return self._test()
        samples = self._labelled()
        if self.split == 'trainval':
            return samples
        in_val = self._validation_mask(samples)
        keep = in_val if self.split == 'val' else ~in_val
        return [sample for sample, kept in zip(samples, keep) if kept]

    def extra_repr(self) -> List[str]:
        return [f'Root of dataset: \t{self.data_root}',
                f'Split: \t{self.split}']
