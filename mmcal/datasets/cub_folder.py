from typing import Tuple

from mmengine import list_from_file
from mmpretrain.datasets import CUB
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class CUBFolder(CUB):
    """A data set in the CUB-200-2011 layout with its own classes.

    mmpretrain's ``CUB`` always names the 200 CUB species; this class reads
    the names from the folder's ``classes.txt`` (``<label> <name>`` per
    line, labels 1..K in order), so sets with other classes, such as the
    synthetic birds of :mod:`mmcal.datasets.synthetic`, keep their
    names and class count. Arguments are ``CUB``'s.
    """

    def __init__(self, data_root: str, **kwargs):
        kwargs.setdefault('metainfo', {})
        kwargs['metainfo'] = dict(
            kwargs['metainfo'],
            classes=self.read_class_names(f'{data_root}/classes.txt'))
        super().__init__(data_root=data_root, **kwargs)

    @staticmethod
    def read_class_names(path: str) -> Tuple[str, ...]:
        """Names of ``classes.txt``, checking that labels run 1..K."""
        names = []
        for number, line in enumerate(list_from_file(path), 1):
            fields = line.split()
            if len(fields) != 2 or fields[0] != str(number):
                raise ValueError(f'{path}:{number}: expected "{number} '
                                 f'<class name>", got {line!r}')
            names.append(fields[1])
        return tuple(names)
