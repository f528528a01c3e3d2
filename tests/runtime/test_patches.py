"""mmcal.runtime.patches: what import mmcal changes in mmengine."""
import os.path as osp
import warnings
from collections import OrderedDict

import mmengine
import pytest
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.fileio import LocalBackend
from mmengine.fileio.backends import registry_utils
from mmengine.runner.checkpoint import CheckpointLoader

from mmcal.runtime import AtomicLocalBackend, patches
from mmcal.runtime.checkpoint_sources import SCHEMES


@pytest.fixture
def isolated(monkeypatch):
    """Each test may re-patch: the registries are restored afterwards."""
    monkeypatch.setattr(CheckpointLoader, '_schemes',
                        OrderedDict(CheckpointLoader._schemes))
    monkeypatch.setattr(registry_utils, 'backends',
                        dict(registry_utils.backends))
    monkeypatch.setattr(registry_utils, 'prefix_to_backends',
                        dict(registry_utils.prefix_to_backends))
    monkeypatch.setattr(BaseDataset, '_serialize_data',
                        BaseDataset._serialize_data)
    monkeypatch.setattr(Config, '_get_cfg_path',
                        Config.__dict__['_get_cfg_path'])
    return monkeypatch


def test_import_applied_every_patch():
    for prefixes, loader in SCHEMES.items():
        for prefix in prefixes:
            assert CheckpointLoader._schemes[prefix] is loader, prefix
    assert registry_utils.backends['local'] is AtomicLocalBackend
    assert registry_utils.prefix_to_backends[''] is AtomicLocalBackend
    assert BaseDataset._serialize_data.mmcal_patch
    assert Config._get_cfg_path.mmcal_patch


def test_applying_again_changes_nothing_and_warns_nothing(isolated):
    schemes = dict(CheckpointLoader._schemes)
    serialize = BaseDataset._serialize_data
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        patches.apply_mmengine_patches()
    assert dict(CheckpointLoader._schemes) == schemes
    assert BaseDataset._serialize_data is serialize


def foreign_loader(filename, map_location=None):
    return {}


def test_unexpected_checkpoint_loader_is_named_and_replaced(isolated):
    CheckpointLoader._schemes['pavi://'] = foreign_loader
    with pytest.warns(patches.PatchWarning) as record:
        patches.patch_checkpoint_loaders()
    message = str(record[0].message)
    assert "'pavi://'" in message and 'foreign_loader' in message
    assert 'mmengine.runner.checkpoint' in message
    assert CheckpointLoader._schemes['pavi://'] is SCHEMES[('pavi://', )]


def test_unexpected_local_backend_is_named_and_replaced(isolated):

    class OtherBackend(LocalBackend):
        pass

    registry_utils.backends['local'] = OtherBackend
    with pytest.warns(patches.PatchWarning, match='OtherBackend'):
        patches.patch_local_backend()
    assert registry_utils.backends['local'] is AtomicLocalBackend


def test_unexpected_dataset_serialization_is_named_and_wrapped(isolated):
    calls = []

    def other_serialize(self):
        calls.append(self)
        return 'packed'

    BaseDataset._serialize_data = other_serialize
    with pytest.warns(patches.PatchWarning, match='other_serialize'):
        patches.patch_empty_dataset_error()

    class Empty:
        data_list = []
        data_root = 'data/empty'

    with pytest.raises(ValueError, match="Empty\\(data_root='data/empty'\\)"):
        BaseDataset._serialize_data(Empty())

    class Full:
        data_list = [dict(img_path='a.jpg')]

    full = Full()
    assert BaseDataset._serialize_data(full) == 'packed'
    assert calls == [full]


def test_unexpected_config_path_resolver_is_named_and_wrapped(isolated):
    seen = []

    def other_get_cfg_path(cfg_path, filename):
        seen.append(cfg_path)
        return cfg_path, None

    Config._get_cfg_path = staticmethod(other_get_cfg_path)
    with pytest.warns(patches.PatchWarning, match='other_get_cfg_path'):
        patches.patch_package_configs()
    # mmcal's own configs, read as local bases; other packages' as before.
    assert Config._get_cfg_path('mmcal::cal_r152_birds.py', 'mine.py') == (
        osp.join(patches.PACKAGE_CONFIGS, 'cal_r152_birds.py'), None)
    assert Config._get_cfg_path('mmpretrain::a/b.py', 'mine.py') == (
        'mmpretrain::a/b.py', None)
    assert seen == ['mmpretrain::a/b.py']
    with pytest.raises(FileNotFoundError, match="'mmcal::nope.py' \\(in "
                       'mine.py\\) names no config of mmcal'):
        Config._get_cfg_path('mmcal::nope.py', 'mine.py')


def test_other_mmengine_version_is_warned(isolated):
    isolated.setattr(mmengine, '__version__', '1.0.0')
    with pytest.warns(patches.PatchWarning, match='found 1.0.0'):
        patches.apply_mmengine_patches()
