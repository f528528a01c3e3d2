"""Config typos and checkpoints that do not fit: errors name the culprit."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint
from mmpretrain.registry import MODELS

from cli_tools import load_tool, start_python
from mmcal_test_utils import (object_dtype_scalar, shell_payload,
                              tiny_model_cfg, tiny_runner_cfg,
                              write_image_folder)


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """A tiny model's weights as a Runner-style checkpoint file."""
    root = tmp_path_factory.mktemp('saved')
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg())
    path = str(root / 'tiny.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return dict(path=path, state=model.state_dict(), root=root)


def test_unknown_component_type_is_named(tmp_path):
    data = write_image_folder(str(tmp_path / 'data'))
    cfg = tiny_runner_cfg(data, str(tmp_path / 'work'))
    cfg['model']['neck']['type'] = 'BAPNek'
    with pytest.raises(KeyError,
                       match='BAPNek is not in the mmpretrain::'
                       'model registry'):
        Runner.from_cfg(Config(cfg))


@pytest.mark.parametrize('change, expected', [
    (dict(num_classes=5), [
        'head.fc.weight: checkpoint (3, 512), model (5, 512)',
        'head.feature_centers: checkpoint (3, 512), model (5, 512)',
    ]),
    (dict(num_attentions=2), [
        'neck.attention.0.weight: checkpoint (4, 128, 1, 1), '
        'model (2, 128, 1, 1)',
        'head.fc.weight: checkpoint (3, 512), model (3, 256)',
    ]),
])
def test_checkpoint_of_other_head_or_attention_count_is_named(
        saved, change, expected):
    model = MODELS.build(tiny_model_cfg(**change))
    # Non-strict, as load_from and --resume load: mmengine would only warn.
    with pytest.raises(ValueError, match='does not fit the model') as e:
        load_checkpoint(model, saved['path'], strict=False)
    for line in expected:
        assert line in str(e.value)
    assert "prefix='backbone.'" in str(e.value)
    assert 'Missing from the checkpoint: none; not in the model: none' in str(
        e.value)


def test_backbone_only_load_suggested_by_the_error_works(saved):
    # The message's advice: fine-tune a 5-class head from a 3-class model.
    cfg = tiny_model_cfg(num_classes=5)
    cfg['backbone']['init_cfg'] = dict(type='Pretrained',
                                       checkpoint=saved['path'],
                                       prefix='backbone.')
    model = MODELS.build(cfg)
    model.init_weights()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, saved['state'][f'backbone.{key}']), key


@pytest.fixture
def truncated(saved, tmp_path):
    with open(saved['path'], 'rb') as file:
        data = file.read()
    path = str(tmp_path / 'cut.pth')
    with open(path, 'wb') as file:
        file.write(data[:len(data) // 2])
    return path


def test_truncated_checkpoint_in_test_tool_is_named(truncated, tmp_path):
    data = write_image_folder(str(tmp_path / 'data'))
    config = str(tmp_path / 'tiny.py')
    Config(tiny_runner_cfg(data, str(tmp_path / 'work'))).dump(config)
    test_tool = load_tool('test')
    with pytest.raises(RuntimeError, match='truncated') as e:
        test_tool.main([config, truncated, '--work-dir', str(tmp_path)])
    assert truncated in str(e.value)


@pytest.mark.parametrize('payload', ['numpy', 'shell'])
def test_test_tool_refuses_a_crafted_checkpoint_cleanly(tmp_path, payload):
    data = write_image_folder(str(tmp_path / 'data'))
    config = str(tmp_path / 'tiny.py')
    Config(tiny_runner_cfg(data, str(tmp_path / 'work'))).dump(config)
    victim = tmp_path / 'touched'
    path = str(tmp_path / 'crafted.pth')
    torch.save({'state_dict': {}, 'meta': {
        'x': object_dtype_scalar() if payload == 'numpy' else
        shell_payload(f'touch {victim}')}}, path)
    process = start_python('tools/test.py', config, path, '--work-dir',
                           str(tmp_path / 'work'))
    output, _ = process.communicate(timeout=300)
    # 1: an exception; a negative code (or 139) would be a crash.
    assert process.returncode == 1, output[-2000:]
    named = ("numpy dtype 'O8' is not a plain numeric or bool type"
             if payload == 'numpy' else 'it names posix.system')
    assert f'Refused to load checkpoint {path}: {named}' in output
    assert not victim.exists()


def test_truncated_load_from_is_named_before_training(truncated, tmp_path):
    data = write_image_folder(str(tmp_path / 'data'))
    cfg = tiny_runner_cfg(data, str(tmp_path / 'work'))
    cfg['load_from'] = truncated
    runner = Runner.from_cfg(Config(copy.deepcopy(cfg)))
    with pytest.raises(RuntimeError, match='truncated') as e:
        runner.train()
    assert truncated in str(e.value)
    assert runner.iter == 0
