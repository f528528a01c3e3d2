"""Checkpoints from URLs, model zoos and object storage are loaded safely.

No network: each test places the file where the download would have put
it (the torch hub cache of a temporary TORCH_HOME), and a download attempt
fails the test.
"""
import json
import os
import subprocess
import sys
import types

import pytest
import torch
import torchvision
from mmengine.runner.checkpoint import (CheckpointLoader, get_external_models,
                                        get_mmcls_models,
                                        get_torchvision_models)

from mmcal.runtime import UNSAFE_LOAD_ENV, hub_cache_path
from mmcal.runtime import checkpoint_sources
from mmcal_test_utils import shell_payload


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)

    def no_download(url, *args, **kwargs):
        raise AssertionError(f'download attempted: {url}')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    return tmp_path / 'torch_home'


# name -> the URL mmengine resolves it to (mmengine's own tables)
SOURCES = {
    'torchvision://resnet18': lambda: get_torchvision_models()['resnet18'],
    'modelzoo://resnet18': lambda: get_torchvision_models()['resnet18'],
    'open-mmlab://vgg16_caffe': lambda: get_external_models()['vgg16_caffe'],
    'openmmlab://vgg16_caffe': lambda: get_external_models()['vgg16_caffe'],
    # a deprecated name, resolved through mmengine's table of new names
    'open-mmlab://resnet50_caffe':
    lambda: get_external_models()['detectron/resnet50_caffe'],
    'mmcls://vgg11': lambda: get_mmcls_models()['vgg11'],
    'https://example.invalid/models/backbone-0123abcd.pth':
    lambda: 'https://example.invalid/models/backbone-0123abcd.pth',
    'http://example.invalid/backbone.pth':
    lambda: 'http://example.invalid/backbone.pth',
}


def test_torchvision_cache_file_is_named_as_torchvision_names_it(torch_home):
    assert hub_cache_path(get_torchvision_models()['resnet18']) == str(
        torch_home / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth')


@pytest.mark.parametrize('name', SOURCES)
def test_malicious_cached_file_is_refused_and_runs_nothing(
        torch_home, tmp_path, name):
    path = hub_cache_path(SOURCES[name]())
    os.makedirs(os.path.dirname(path))
    victim = tmp_path / 'touched'
    torch.save({'state_dict': shell_payload(f'touch {victim}')},
               path)
    with pytest.raises(RuntimeError) as error:
        CheckpointLoader.load_checkpoint(name)
    assert str(error.value).startswith(
        f'Refused to load checkpoint {path} (from {SOURCES[name]()}): it '
        'names posix.system')
    assert not victim.exists()


def test_torchvision_state_dict_loads_unchanged(torch_home):
    state_dict = torchvision.models.resnet18().state_dict()
    path = hub_cache_path(SOURCES['torchvision://resnet18']())
    os.makedirs(os.path.dirname(path))
    torch.save(state_dict, path)
    loaded = CheckpointLoader.load_checkpoint('torchvision://resnet18')
    assert list(loaded) == list(state_dict)
    assert all(torch.equal(loaded[key], state_dict[key]) for key in loaded)
    # The version metadata that load_state_dict reads survives.
    assert loaded._metadata == state_dict._metadata
    torchvision.models.resnet18().load_state_dict(loaded)


@pytest.mark.parametrize('name', [n for n in SOURCES if 'mmcls' not in n])
def test_benign_cached_file_loads(torch_home, name):
    path = hub_cache_path(SOURCES[name]())
    os.makedirs(os.path.dirname(path))
    torch.save({'state_dict': {'conv.weight': torch.ones(2)}}, path)
    loaded = CheckpointLoader.load_checkpoint(name)
    assert torch.equal(loaded['state_dict']['conv.weight'], torch.ones(2))


def test_mmcls_checkpoint_keeps_its_backbone(torch_home):
    path = hub_cache_path(SOURCES['mmcls://vgg11']())
    os.makedirs(os.path.dirname(path))
    torch.save({'state_dict': {'backbone.conv.weight': torch.ones(2),
                               'head.fc.weight': torch.zeros(2)}}, path)
    loaded = CheckpointLoader.load_checkpoint('mmcls://vgg11')
    assert list(loaded['state_dict']) == ['conv.weight']


def test_unknown_model_name_is_named(torch_home):
    with pytest.raises(KeyError, match="torchvision:// knows no model 'nope'"):
        CheckpointLoader.load_checkpoint('torchvision://nope')


def test_open_mmlab_path_below_mmengine_home(tmp_path, monkeypatch):
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path))
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    (tmp_path / 'open_mmlab.json').write_text(
        json.dumps({'mine': 'mine.pth', 'evil': 'evil.pth'}))
    torch.save({'state_dict': {'w': torch.ones(1)}}, tmp_path / 'mine.pth')
    victim = tmp_path / 'touched'
    torch.save({'x': shell_payload(f'touch {victim}')},
               tmp_path / 'evil.pth')
    loaded = CheckpointLoader.load_checkpoint('open-mmlab://mine')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(1))
    with pytest.raises(RuntimeError, match='evil.pth: it names posix.system'):
        CheckpointLoader.load_checkpoint('open-mmlab://evil')
    assert not victim.exists()


def saved_bytes(obj, tmp_path):
    path = tmp_path / 'saved.pth'
    torch.save(obj, path)
    return path.read_bytes()


def test_object_storage_bytes_are_loaded_safely(tmp_path, monkeypatch):
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    victim = tmp_path / 'touched'
    stored = {
        's3://bucket/good.pth': saved_bytes({'w': torch.ones(1)}, tmp_path),
        's3://bucket/evil.pth': saved_bytes(
            {'x': shell_payload(f'touch {victim}')}, tmp_path),
    }
    backend = types.SimpleNamespace(get=stored.__getitem__)
    monkeypatch.setattr(checkpoint_sources, 'get_file_backend',
                        lambda *args, **kwargs: backend)
    loaded = CheckpointLoader.load_checkpoint('s3://bucket/good.pth')
    assert torch.equal(loaded['w'], torch.ones(1))
    with pytest.raises(RuntimeError,
                       match='s3://bucket/evil.pth: it names posix.system'):
        CheckpointLoader.load_checkpoint('s3://bucket/evil.pth')
    assert not victim.exists()


def test_pavi_download_is_loaded_safely(tmp_path, monkeypatch):
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    victim = tmp_path / 'touched'
    data = saved_bytes({'x': shell_payload(f'touch {victim}')},
                       tmp_path)

    class Model:
        name = 'evil.pth'

        def download(self, path):
            with open(path, 'wb') as file:
                file.write(data)

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    with pytest.raises(RuntimeError,
                       match='pavi://models/evil: it names posix.system'):
        CheckpointLoader.load_checkpoint('pavi://models/evil')
    assert not victim.exists()


def test_every_registered_source_is_loaded_by_mmcal():
    # A source mmengine adds in a later release would bypass the safe
    # loader until it is registered here too.
    loaders = CheckpointLoader._schemes
    assert {prefix: loader.__module__ for prefix, loader in loaders.items()
            if not loader.__module__.startswith('mmcal.')} == {}


def test_cached_file_that_is_a_fifo_is_named_not_waited_on(torch_home):
    url = SOURCES['torchvision://resnet18']()
    path = hub_cache_path(url)
    os.makedirs(os.path.dirname(path))
    os.mkfifo(path)
    # In a process of its own: opening a FIFO for reading waits for a
    # writer, forever.
    done = subprocess.run([
        sys.executable, '-c', 'import mmcal; from mmengine.runner.checkpoint '
        "import CheckpointLoader; CheckpointLoader.load_checkpoint("
        "'torchvision://resnet18')"
    ], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TORCH_HOME=str(torch_home)))
    assert done.returncode == 1, done.stderr[-2000:]
    assert (f'Cannot read checkpoint {path} (from {url}): it is a named pipe '
            '(FIFO), not a regular file') in done.stderr
