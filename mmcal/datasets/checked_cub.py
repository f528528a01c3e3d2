import re
from typing import Callable, Dict, Hashable, List, Tuple

from mmengine import fileio
from mmpretrain.datasets import CUB
from mmpretrain.registry import DATASETS

from .annotation_file import image_name_key, read_annotation_lines

# train_test_split.txt: 1 marks a training image, 0 a test image.
SPLIT_FLAGS = {'train': '1', 'test': '0'}


def _split_pair(path: str, number: int, line: str,
                expected: str) -> Tuple[str, str]:
    """``'<key> <value>'`` split at the first run of whitespace, so that a
    value (an image or class name) may contain spaces."""
    fields = line.split(None, 1)
    if len(fields) != 2:
        raise ValueError(f'{path}:{number}: expected "{expected}", got '
                         f'{line!r}')
    return fields[0], fields[1]


def _whole_number(text: str, what: str) -> int:
    # str.isdigit and int() also accept non-ASCII digits, '+3' and '3_0'.
    if not re.fullmatch('[0-9]+', text):
        raise ValueError(f'{what} must be a whole number, got {text!r}')
    return int(text)


def read_cub_classes(path: str) -> Tuple[str, ...]:
    """Class names of a CUB ``classes.txt``: ``<label> <name>`` per line,
    labels 1..K in order; a name may contain spaces."""
    names = []
    for number, line in read_annotation_lines(path):
        label, name = _split_pair(path, number, line, '<label> <class name>')
        if label != str(len(names) + 1):
            raise ValueError(
                f'{path}:{number}: expected class label {len(names) + 1} '
                f'(labels run 1..K in order), got {line!r}')
        names.append(name)
    if not names:
        raise ValueError(f'{path}: no classes')
    return tuple(names)


def _read_id_table(
        path: str,
        expected: str,
        parse: Callable[[str], object],
        parse_id: Callable[[str], Hashable] = lambda text: _whole_number(
            text, 'the image id'),
        id_name: str = 'image id') -> Dict[Hashable, tuple]:
    """``{id: (line number, parse(value))}`` of a file of ``<id> <value>``
    lines, ids read by ``parse_id`` (CUB's whole numbers by default).
    ``parse`` and ``parse_id`` raise ``ValueError`` with the reason; this
    adds ``path:line``."""
    table: Dict[Hashable, tuple] = {}
    for number, line in read_annotation_lines(path):
        key, value = _split_pair(path, number, line, expected)
        try:
            image_id = parse_id(key)
            if image_id in table:
                raise ValueError(f'duplicate {id_name} {image_id} (first '
                                 f'on line {table[image_id][0]})')
            table[image_id] = (number, parse(value))
        except ValueError as error:
            raise ValueError(f'{path}:{number}: {error}') from None
    return table


def _check_same_ids(reference: str, ids: Dict[int, tuple], other: str,
                    other_ids: Dict[int, tuple]) -> None:
    for image_id, (number, _) in ids.items():
        if image_id not in other_ids:
            raise ValueError(f'{other}: no line for image id {image_id} '
                             f'(listed in {reference}:{number})')
    for image_id, (number, _) in other_ids.items():
        if image_id not in ids:
            raise ValueError(f'{other}:{number}: image id {image_id} is '
                             f'not in {reference}')


@DATASETS.register_module()
class CheckedCUB(CUB):
    """mmpretrain's ``CUB`` (CUB-200-2011 layout) with its annotation
    files checked: a config switches by type name, arguments unchanged.

    Reads ``images.txt`` (``<image id> <path under images/>``),
    ``image_class_labels.txt`` (``<image id> <label>``),
    ``train_test_split.txt`` (``<image id> <1 train | 0 test>``) and
    ``classes.txt`` (``<label> <name>``, labels 1..K in order) under
    ``data_root``. Each value is what follows the first run of whitespace
    after the id, so an image name may contain spaces. Blank lines, CRLF
    line ends and a leading UTF-8 byte-order mark are accepted. Samples
    keep the order of ``images.txt``.

    Raises ``ValueError`` naming ``file:line`` for a malformed line, a
    non-numeric id or label, a non-UTF-8 or NUL byte, a duplicate image
    id, one image listed under two ids (names compared normalised,
    ``x.jpg`` as ``./x.jpg``; whatever the labels: it would be one sample
    twice, or one sample with two labels), a name leaving ``images/``
    (unless ``allow_outside_root``), an id missing from one of the files, a
    label outside 1..K of ``classes.txt``, a split value other than 0 or 1,
    or a ``classes.txt`` whose K differs from the number of class names the
    data set declares (mmpretrain's 200 CUB species unless ``metainfo``
    says otherwise; :class:`CUBFolder` takes the names of
    ``classes.txt``).

    Args:
        data_root: the folder of the set.
        split: ``'train'`` or ``'test'``.
        allow_outside_root: accept image names that leave ``images/``
            (``../x.jpg``, absolute paths); by default they are refused,
            naming ``file:line``, so that a list cannot make the set read
            files from elsewhere.
        test_mode, **kwargs: as for mmpretrain's ``CUB``.
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 test_mode: bool = False,
                 allow_outside_root: bool = False,
                 **kwargs):
        if split not in SPLIT_FLAGS:
            raise ValueError(f'{type(self).__name__} split must be one of '
                             f'{tuple(SPLIT_FLAGS)}, got {split!r}')
        self.allow_outside_root = allow_outside_root
        super().__init__(
            data_root=data_root, split=split, test_mode=test_mode, **kwargs)

    def load_data_list(self) -> List[dict]:
        classes_file = fileio.join_path(self.data_root, 'classes.txt')
        num_classes = len(read_cub_classes(classes_file))
        if num_classes != len(self.CLASSES):
            raise ValueError(
                f'{classes_file} lists {num_classes} classes but the data '
                f'set declares {len(self.CLASSES)} class names; use '
                "type='CUBFolder' for a set with its own classes, or give "
                'metainfo=dict(classes=...)')

        def parse_label(text: str) -> int:
            label = _whole_number(text, 'the label')
            if not 1 <= label <= num_classes:
                raise ValueError(f'label {label} is outside 1..'
                                 f'{num_classes} (the classes of '
                                 f'{classes_file})')
            return label

        def parse_flag(text: str) -> str:
            if text not in SPLIT_FLAGS.values():
                raise ValueError('the split must be 1 (train) or 0 (test), '
                                 f'got {text!r}')
            return text

        images = _read_id_table(self.ann_file, '<image id> <image path>',
                                str)
        labels = _read_id_table(self.image_class_labels_file,
                                '<image id> <label>', parse_label)
        flags = _read_id_table(self.train_test_split_file,
                               '<image id> <1|0>', parse_flag)
        _check_same_ids(self.ann_file, images, self.image_class_labels_file,
                        labels)
        _check_same_ids(self.ann_file, images, self.train_test_split_file,
                        flags)

        first_id: Dict[str, int] = {}
        data_list = []
        for image_id, (number, name) in images.items():
            label = labels[image_id][1]
            key = image_name_key(self.ann_file, number, name,
                                 self.allow_outside_root)
            if key in first_id:
                other = first_id[key]
                other_label = labels[other][1]
                why = ('the same label: it would be one sample twice'
                       if other_label == label else
                       f'labels {other_label} and {label}')
                raise ValueError(
                    f'{self.ann_file}:{number}: image {name!r} is already '
                    f'listed as id {other} (line {images[other][0]}), with '
                    f'{why}')
            first_id[key] = image_id
            if flags[image_id][1] != SPLIT_FLAGS[self.split]:
                continue
            data_list.append(
                dict(
                    img_path=self.backend.join_path(self.img_prefix, name),
                    gt_label=label - 1))
        return data_list
