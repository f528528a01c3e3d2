"""Shared fixtures."""
import pytest
import torch

from mmcal_test_utils import tiny_model_cfg, write_image_folder


@pytest.fixture
def tiny_model():
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg())


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(str(tmp_path / 'data'))
