from typing import Dict, List, Sequence

from mmpretrain.datasets import StanfordCars
from mmpretrain.registry import DATASETS

from .annotation_file import image_name_key

EXTRA_HINT = ('reading Stanford Cars needs mat4py: pip install '
              '"mmcal[cars]" (or pip install -r requirements/cars.txt)')


def load_mat(path: str) -> dict:
    """The variables of a MATLAB file read by mat4py (the optional
    ``cars`` extra), a file it cannot parse refused by name."""
    try:
        import mat4py
    except ImportError:
        raise ImportError(f'{path}: {EXTRA_HINT}') from None
    try:
        return mat4py.loadmat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f'Annotation file not found: {path}') from None
    except Exception as error:
        # mat4py raises IndexError, KeyError ... on a file it cannot parse.
        raise ValueError(f'{path}: not a MATLAB file mat4py can read '
                         f'({type(error).__name__}: {error})') from None


def _column(path: str, table: dict, field: str) -> list:
    """One field of a struct array as a list: mat4py returns a bare value
    for a struct array of one record."""
    if field not in table:
        raise ValueError(f'{path}: the annotations have no {field!r} field '
                         f'(fields: {sorted(table)})')
    values = table[field]
    return values if isinstance(values, list) else [values]


def _whole(path: str, index: int, field: str, value) -> int:
    """A MATLAB number that must be whole (mat4py gives doubles as
    float)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f'{path}: annotation {index + 1}: {field} must be a '
                         f'whole number, got {value!r}')
    return value


def read_car_records(path: str, name_field: str, num_classes: int,
                     allow_outside_root: bool = False) -> List[dict]:
    """``[{'index', 'name', 'label', 'test'}]`` of the ``annotations``
    struct array of a Stanford Cars .mat file; ``label`` is 1-based as in
    the file, ``test`` None where the file has no ``test`` field.

    Raises ``ValueError`` naming ``path`` and the 1-based record index for
    a field missing or of another length, a name that is not text, one
    image listed twice (in any split), a name leaving the image folder
    (unless ``allow_outside_root``; ``path:index``), a label outside
    1..``num_classes`` or a test flag other than 0/1.
    """
    table = load_mat(path).get('annotations')
    if not isinstance(table, dict):
        raise ValueError(f'{path}: no "annotations" struct array')
    names = _column(path, table, name_field)
    labels = _column(path, table, 'class')
    flags = _column(path, table, 'test') if 'test' in table else None
    for field, values in (('class', labels), ('test', flags)):
        if values is not None and len(values) != len(names):
            raise ValueError(f'{path}: {len(names)} {name_field} values but '
                             f'{len(values)} {field} values')
    first_index: Dict[str, int] = {}
    records = []
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f'{path}: annotation {index + 1}: {name_field} '
                             f'must be a file name, got {name!r}')
        key = image_name_key(path, index + 1, name, allow_outside_root)
        if key in first_index:
            raise ValueError(f'{path}: annotation {index + 1}: image '
                             f'{name!r} is already listed as annotation '
                             f'{first_index[key]}')
        first_index[key] = index + 1
        label = _whole(path, index, 'class', labels[index])
        if not 1 <= label <= num_classes:
            raise ValueError(f'{path}: annotation {index + 1}: class {label} '
                             f'is outside 1..{num_classes}')
        test = None
        if flags is not None:
            test = _whole(path, index, 'test', flags[index])
            if test not in (0, 1):
                raise ValueError(f'{path}: annotation {index + 1}: test '
                                 f'must be 0 or 1, got {test}')
        records.append(dict(index=index, name=name, label=label, test=test))
    return records


def check_class_names(path: str, names, classes: Sequence[str]) -> None:
    """The ``class_names`` of a Stanford Cars .mat file must be as many as
    the classes the data set declares (the labels index both)."""
    names = names if isinstance(names, list) else [names]
    if names == [None] or len(names) != len(classes):
        count = 0 if names == [None] else len(names)
        raise ValueError(f'{path} lists {count} class names but the data '
                         f'set declares {len(classes)}; give '
                         'metainfo=dict(classes=...) for another set')


@DATASETS.register_module()
class CheckedStanfordCars(StanfordCars):
    """mmpretrain's ``StanfordCars`` with its .mat annotation files
    checked: a config switches by type name, arguments unchanged.

    Reads either layout mmpretrain reads: ``devkit/cars_train_annos.mat``
    or ``devkit/cars_test_annos_withlabels.mat`` (``fname``, ``class``)
    with images in ``cars_train/`` or ``cars_test/`` and the class names in
    ``devkit/cars_meta.mat``; or ``cars_annos.mat`` (``relative_im_path``,
    ``class``, ``test`` and ``class_names``) at the root. Labels are the
    files' 1-based classes minus one, as in mmpretrain.

    Raises ``ImportError`` naming the ``cars`` extra when mat4py is
    missing, and ``ValueError`` naming the file (and the 1-based record
    index) for a file mat4py cannot parse, a malformed record, a class
    outside 1..K of the declared classes (mmpretrain's 196 unless
    ``metainfo`` says otherwise), a class-name count other than K, a file
    name listed twice, a name leaving the image folder (unless
    ``allow_outside_root``) or an image that does not exist.

    Args:
        data_root: the Stanford Cars folder.
        split: ``'train'`` or ``'test'``.
        allow_outside_root: accept names that leave the image folder.
        **kwargs: as for mmpretrain's ``StanfordCars``.
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 allow_outside_root: bool = False,
                 **kwargs):
        self.allow_outside_root = allow_outside_root
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _records(self) -> List[dict]:
        """The checked records of this split."""
        num_classes = len(self.CLASSES)
        if self.ann_file.endswith('cars_annos.mat'):
            check_class_names(self.ann_file,
                              load_mat(self.ann_file).get('class_names'),
                              self.CLASSES)
            records = read_car_records(self.ann_file, 'relative_im_path',
                                       num_classes, self.allow_outside_root)
            for record in records:
                if record['test'] is None:
                    raise ValueError(f'{self.ann_file}: the annotations '
                                     "have no 'test' field")
            return [r for r in records if r['test'] == int(self.test_mode)]
        meta = self.backend.join_path(self.data_root, 'devkit',
                                      'cars_meta.mat')
        check_class_names(meta, load_mat(meta).get('class_names'),
                          self.CLASSES)
        return read_car_records(self.ann_file, 'fname', num_classes,
                                self.allow_outside_root)

    def load_data_list(self) -> List[dict]:
        data_list = []
        for record in self._records():
            img_path = self.backend.join_path(self.img_prefix,
                                              record['name'])
            if not self.backend.isfile(img_path):
                raise ValueError(
                    f'{self.ann_file}: annotation {record["index"] + 1}: '
                    f'image {img_path} does not exist')
            data_list.append(
                dict(img_path=img_path, gt_label=record['label'] - 1))
        return data_list
