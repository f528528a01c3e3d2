from typing import Dict, List, Tuple

from mmengine import fileio
from mmpretrain.datasets import FGVCAircraft
from mmpretrain.registry import DATASETS

from .annotation_file import image_name_key, read_annotation_lines


def read_variants(path: str) -> Dict[str, int]:
    """``{variant name: line number}`` of an FGVC-Aircraft
    ``variants.txt`` (one name per line; names hold spaces and slashes,
    ``F/A-18``), refusing a duplicate name by ``path:line``."""
    variants: Dict[str, int] = {}
    for number, name in read_annotation_lines(path):
        if name in variants:
            raise ValueError(f'{path}:{number}: variant {name!r} is listed '
                             f'twice (first on line {variants[name]})')
        variants[name] = number
    if not variants:
        raise ValueError(f'{path}: no variants')
    return variants


def _split_line(path: str, number: int, line: str) -> Tuple[str, str]:
    """``'<image id> <variant name>'`` split at the first run of
    whitespace: the variant name may contain spaces."""
    fields = line.split(None, 1)
    if len(fields) != 2:
        raise ValueError(f'{path}:{number}: expected "<image id> <variant '
                         f'name>", got {line!r}')
    return fields[0], fields[1]


@DATASETS.register_module()
class CheckedFGVCAircraft(FGVCAircraft):
    """mmpretrain's ``FGVCAircraft`` (``fgvc-aircraft-2013b`` layout,
    variant level) with its annotation files checked: a config switches by
    type name, arguments unchanged.

    Reads ``data/variants.txt`` (one variant name per line) and
    ``data/images_variant_<split>.txt`` (``<image id> <variant name>``;
    the image is ``data/images/<image id>.jpg``). The label of a sample is
    the index of its variant in the declared classes (mmpretrain's 100
    variants unless ``metainfo`` says otherwise), as mmpretrain's reader
    labels it. Blank lines, CRLF line ends and a UTF-8 byte-order mark are
    accepted.

    Raises ``ValueError`` naming ``file:line`` for a malformed line, a
    non-UTF-8 or NUL byte, a variant not in ``variants.txt``, an image id
    listed twice, an id leaving ``data/images/`` (unless
    ``allow_outside_root``) or an image that does not exist; and naming
    ``variants.txt`` for a duplicate variant or one the data set does not
    declare, or a variant count other than the declared classes'.

    Args:
        data_root: the ``fgvc-aircraft-2013b`` folder.
        split: ``'train'``, ``'val'``, ``'trainval'`` or ``'test'``.
        allow_outside_root: accept ids that leave ``data/images/``.
        **kwargs: as for mmpretrain's ``FGVCAircraft``.
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'trainval',
                 allow_outside_root: bool = False,
                 **kwargs):
        self.allow_outside_root = allow_outside_root
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _variant_labels(self) -> Dict[str, int]:
        """``{variant name: label}``, variants.txt checked against the
        declared classes."""
        path = fileio.join_path(self.data_root, 'data', 'variants.txt')
        variants = read_variants(path)
        labels = {name: label for label, name in enumerate(self.CLASSES)}
        for name, number in variants.items():
            if name not in labels:
                raise ValueError(
                    f'{path}:{number}: variant {name!r} is not among the '
                    f'{len(labels)} class names the data set declares; '
                    'give metainfo=dict(classes=...) for another set of '
                    'variants')
        if len(variants) != len(labels):
            raise ValueError(
                f'{path} lists {len(variants)} variants but the data set '
                f'declares {len(labels)} class names')
        return labels

    def load_data_list(self) -> List[dict]:
        labels = self._variant_labels()
        first_line: Dict[str, int] = {}
        data_list = []
        for number, line in read_annotation_lines(self.ann_file):
            image_id, variant = _split_line(self.ann_file, number, line)
            where = f'{self.ann_file}:{number}'
            if variant not in labels:
                raise ValueError(f'{where}: variant {variant!r} is not in '
                                 'variants.txt')
            name = f'{image_id}.jpg'
            key = image_name_key(self.ann_file, number, name,
                                 self.allow_outside_root)
            if key in first_line:
                raise ValueError(f'{where}: image id {image_id!r} is '
                                 f'already listed on line {first_line[key]}')
            first_line[key] = number
            img_path = self.backend.join_path(self.img_prefix, name)
            if not self.backend.isfile(img_path):
                raise ValueError(f'{where}: image {img_path} does not exist')
            data_list.append(dict(img_path=img_path,
                                  gt_label=labels[variant]))
        return data_list
