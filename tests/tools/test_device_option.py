"""--device of predict.py and visualize_attention.py: a device this machine
lacks is named with the available ones, before any model is built."""
import os
import os.path as osp

import pytest
import torch

from tiny_training import load_tool, trained_tiny_run

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason='needs a machine without CUDA')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


def test_predict_names_missing_cuda(tiny_run, tmp_path):
    out = str(tmp_path / 'answer.txt')
    with pytest.raises(ValueError) as error:
        load_tool('predict.py').main([
            tiny_run.config, tiny_run.checkpoint, tiny_run.data_root,
            '--out', out, '--device', 'cuda:0'
        ])
    assert str(error.value).startswith(
        '--device cuda:0: CUDA is not available (')
    assert str(error.value).endswith('available devices: cpu')
    assert not osp.exists(out)


@pytest.mark.parametrize('device, reason', [
    ('cuda', 'CUDA is not available'),
    ('gpu0', 'is not a device name'),
    ('meta', 'is not available'),
])
def test_visualize_names_unavailable_device(tiny_run, tmp_path, device,
                                            reason):
    out_dir = tmp_path / 'vis'
    with pytest.raises(ValueError, match=reason) as error:
        load_tool('visualize_attention.py').main([
            tiny_run.config, tiny_run.checkpoint, tiny_run.data_root,
            '--out-dir', str(out_dir), '--device', device
        ])
    assert repr(device) in str(error.value) or device in str(error.value)
    assert 'available devices: cpu' in str(error.value)
    assert not osp.exists(out_dir) or not os.listdir(out_dir)
