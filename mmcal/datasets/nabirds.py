import re
from typing import Dict, List, Tuple

from mmengine import fileio
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .annotation_file import image_name_key
from .checked_cub import (SPLIT_FLAGS, _check_same_ids, _read_id_table,
                          _whole_number)

# NABirds image ids are UUIDs: 32 hex digits, dashed 8-4-4-4-12 in the
# official files.
_IMAGE_ID = re.compile(
    '[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', re.IGNORECASE)


def _image_id(text: str) -> str:
    """The canonical form (32 lower-case hex digits) of an image id, so
    that a dashed and an undashed spelling are one id."""
    if not _IMAGE_ID.fullmatch(text):
        raise ValueError('the image id must be 32 hex digits (a UUID, '
                         f'dashes allowed), got {text!r}')
    return text.replace('-', '').lower()


def _class_id(text: str) -> int:
    return _whole_number(text, 'the class id')


def read_taxonomy(classes_file: str,
                  hierarchy_file: str) -> Tuple[Dict[int, tuple], dict]:
    """The nodes of ``classes.txt`` (``<id> <name>``) and the parents of
    ``hierarchy.txt`` (``<child id> <parent id>``).

    Returns:
        ``({id: (line, name)}, {child id: (line, parent id)})``; a node
        without a parent line is a root.

    Raises:
        ValueError: ``file:line`` of a malformed line, a duplicate id, a
            node with two parents, a child or parent not in
            ``classes.txt``, or a cycle of parents.
    """
    names = _read_id_table(classes_file, '<class id> <class name>', str,
                           _class_id, 'class id')
    if not names:
        raise ValueError(f'{classes_file}: no classes')
    parents = _read_id_table(hierarchy_file, '<child id> <parent id>',
                             _class_id, _class_id, 'child id')
    for child, (number, parent) in parents.items():
        for role, node in (('child', child), ('parent', parent)):
            if node not in names:
                raise ValueError(f'{hierarchy_file}:{number}: {role} id '
                                 f'{node} is not in {classes_file}')
    for start in parents:
        seen = [start]
        while seen[-1] in parents:
            number, parent = parents[seen[-1]]
            if parent in seen:
                cycle = ' -> '.join(map(str, seen[seen.index(parent):]))
                raise ValueError(
                    f'{hierarchy_file}:{number}: a cycle of parents '
                    f'({cycle} -> {parent})')
            seen.append(parent)
    return names, parents


def ancestors(node: int, parents: dict) -> Tuple[int, ...]:
    """The ids above ``node``, its parent first and a root last
    (``parents`` as :func:`read_taxonomy` returns them, free of
    cycles)."""
    above = []
    while node in parents:
        node = parents[node][1]
        above.append(node)
    return tuple(above)


@DATASETS.register_module()
class NABirds(BaseDataset):
    """The NABirds data set in its official layout, every annotation file
    checked.

    Reads under ``data_root``: ``images.txt`` (``<image id> <path under
    images/>``, ids UUIDs of 32 hex digits, dashed or not),
    ``image_class_labels.txt`` (``<image id> <class id>``),
    ``train_test_split.txt`` (``<image id> <1 train | 0 test>``),
    ``classes.txt`` (``<class id> <name>`` for every node of the taxonomy,
    names with spaces) and ``hierarchy.txt`` (``<child id> <parent id>``).
    The classes are the ids that label an image, in id order, as labels
    0..K-1 (555 of the 1011 nodes in the real set); samples keep the order
    of ``images.txt``.

    ``metainfo``: ``classes`` (their names), ``class_ids`` (their
    ``classes.txt`` ids) and ``ancestors`` (per class, the *names* of the
    nodes above it, parent first, the root last).

    Raises ``ValueError`` naming ``file:line`` for a malformed line, a bad
    id, a non-UTF-8 or NUL byte, a duplicate id, one image listed under two
    ids, a name leaving ``images/`` (unless ``allow_outside_root``), an id
    missing from one of the files, a label not in ``classes.txt``, a split
    value other than 0 or 1, or a parent that is unknown, a second one or
    part of a cycle in ``hierarchy.txt``.

    Args:
        data_root: the folder of the set.
        split: ``'train'`` or ``'test'``.
        allow_outside_root: accept image names that leave ``images/``.
        **kwargs: as for mmpretrain's ``BaseDataset`` (``metainfo`` other
            than the three keys above, ``pipeline``, ``test_mode`` ...).
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 allow_outside_root: bool = False,
                 **kwargs):
        if split not in SPLIT_FLAGS:
            raise ValueError(f'{type(self).__name__} split must be one of '
                             f'{tuple(SPLIT_FLAGS)}, got {split!r}')
        self.split = split
        self.allow_outside_root = allow_outside_root
        join = fileio.join_path
        self.labels_file = join(data_root, 'image_class_labels.txt')
        self.split_file = join(data_root, 'train_test_split.txt')
        classes_file = join(data_root, 'classes.txt')
        names, parents = read_taxonomy(classes_file,
                                       join(data_root, 'hierarchy.txt'))

        def parse_label(text: str) -> int:
            class_id = _class_id(text)
            if class_id not in names:
                raise ValueError(f'class id {class_id} is not in '
                                 f'{classes_file}')
            return class_id

        self.class_labels = _read_id_table(
            self.labels_file, '<image id> <class id>', parse_label,
            _image_id)
        class_ids = sorted({label for _, label in self.class_labels.values()})
        self.label_of = {class_id: k for k, class_id in enumerate(class_ids)}
        kwargs['metainfo'] = dict(
            kwargs.get('metainfo') or {},
            classes=tuple(names[i][1] for i in class_ids),
            class_ids=tuple(class_ids),
            ancestors=tuple(
                tuple(names[node][1] for node in ancestors(i, parents))
                for i in class_ids))
        super().__init__(
            ann_file='images.txt',
            data_root=data_root,
            data_prefix='images',
            **kwargs)

    def load_data_list(self) -> List[dict]:
        def parse_flag(text: str) -> str:
            if text not in SPLIT_FLAGS.values():
                raise ValueError('the split must be 1 (train) or 0 (test), '
                                 f'got {text!r}')
            return text

        images = _read_id_table(self.ann_file, '<image id> <image path>',
                                str, _image_id)
        flags = _read_id_table(self.split_file, '<image id> <1|0>',
                               parse_flag, _image_id)
        _check_same_ids(self.ann_file, images, self.labels_file,
                        self.class_labels)
        _check_same_ids(self.ann_file, images, self.split_file, flags)

        first_id: Dict[str, str] = {}
        data_list = []
        for image_id, (number, name) in images.items():
            key = image_name_key(self.ann_file, number, name,
                                 self.allow_outside_root)
            if key in first_id:
                other = first_id[key]
                raise ValueError(
                    f'{self.ann_file}:{number}: image {name!r} is already '
                    f'listed as id {other} (line {images[other][0]})')
            first_id[key] = image_id
            if flags[image_id][1] != SPLIT_FLAGS[self.split]:
                continue
            data_list.append(
                dict(
                    img_path=fileio.join_path(self.img_prefix, name),
                    gt_label=self.label_of[self.class_labels[image_id][1]]))
        return data_list
