"""Shared fixtures."""
import pytest
import torch

from mmcal_test_utils import (as_own_process, tiny_model_cfg,
                              write_image_folder)


@pytest.fixture(autouse=True)
def own_global_instances():
    """Each test forgets the loggers, visualizers and message hubs it made.

    mmengine names a Runner's after the second it starts: a Runner of the
    next test started in the same second would write into this test's
    folders otherwise.
    """
    with as_own_process():
        yield


@pytest.fixture
def tiny_model():
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg())


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(str(tmp_path / 'data'))
