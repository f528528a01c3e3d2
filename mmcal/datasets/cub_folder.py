from mmengine import fileio
from mmpretrain.registry import DATASETS

from .checked_cub import CheckedCUB, read_cub_classes


@DATASETS.register_module()
class CUBFolder(CheckedCUB):
    """A data set in the CUB-200-2011 layout with its own classes.

    mmpretrain's ``CUB`` always names the 200 CUB species; this class reads
    the names from the folder's ``classes.txt`` (``<label> <name>`` per
    line, labels 1..K in order), so sets with other classes, such as the
    synthetic birds of :mod:`mmcal.datasets.synthetic`, keep their
    names and class count. Arguments and checks are
    :class:`CheckedCUB`'s.
    """

    def __init__(self, data_root: str, **kwargs):
        kwargs['metainfo'] = dict(
            kwargs.get('metainfo') or {},
            classes=read_cub_classes(
                fileio.join_path(data_root, 'classes.txt')))
        super().__init__(data_root=data_root, **kwargs)
