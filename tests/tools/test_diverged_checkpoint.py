"""A diverged model is refused by every tool that runs it, naming the
checkpoint: test, predict, visualise and export."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tiny_training import ROOT, load_tool, trained_tiny_run

from mmcal.runtime import load_checkpoint_file


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


@pytest.fixture(scope='module')
def diverged(tiny_run, tmp_path_factory):
    """The tiny checkpoint with finite but huge first-layer weights, as a
    too high learning rate leaves them: in eval mode the activations
    overflow and every score is NaN."""
    checkpoint = load_checkpoint_file(tiny_run.checkpoint)
    weights = checkpoint['state_dict']['backbone.conv1.weight']
    weights.mul_(1e37 / weights.abs().max())
    assert torch.isfinite(weights).all()
    path = str(tmp_path_factory.mktemp('diverged') / 'diverged.pth')
    torch.save(
        dict(state_dict=checkpoint['state_dict'], meta=checkpoint['meta']),
        path)
    return path


def assert_names_diverged(message, checkpoint):
    assert f'Checkpoint {checkpoint} gives non-finite (NaN or infinite) ' \
        'class scores' in message
    assert 'diverged' in message


def test_test_tool_refuses_nan_scores(tiny_run, diverged, tmp_path):
    out = str(tmp_path / 'metrics.json')
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'), tiny_run.config,
         diverged, '--work-dir', str(tmp_path), '--out', out,
         '--out-item', 'metrics'],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'FloatingPointError' in result.stderr
    assert_names_diverged(result.stderr, diverged)
    # The first batch of the test set is named, not a 0 % result written.
    assert '4 of 4 images (' in result.stderr
    assert 'class_0/0.png' in result.stderr
    assert not osp.exists(out)


def test_predict_refuses_nan_scores(tiny_run, diverged, tmp_path):
    out = str(tmp_path / 'answer.csv')
    with pytest.raises(FloatingPointError) as error:
        load_tool('predict.py').main(
            [tiny_run.config, diverged, tiny_run.data_root, '--out', out])
    assert_names_diverged(str(error.value), diverged)
    assert '12 of 12 images (class_0/0.png, class_0/1.png' in str(error.value)
    assert 'and 7 more' in str(error.value)
    assert not osp.exists(out)


def test_visualize_refuses_nan_scores(tiny_run, diverged, tmp_path):
    out_dir = tmp_path / 'vis'
    with pytest.raises(FloatingPointError) as error:
        load_tool('visualize_attention.py').main([
            tiny_run.config, diverged,
            osp.join(tiny_run.data_root, 'class_1'), '--out-dir',
            str(out_dir)
        ])
    assert_names_diverged(str(error.value), diverged)
    assert '4 of 4 images (0.png, 1.png, 2.png, 3.png)' in str(error.value)
    assert os.listdir(out_dir) == []


def test_export_refuses_nan_scores(tiny_run, diverged, tmp_path):
    out = str(tmp_path / 'diverged.onnx')
    with pytest.raises(FloatingPointError) as error:
        load_tool('deployment/pytorch2onnx.py').main(
            [tiny_run.config, diverged, '--out', out, '--views', 'raw'])
    assert_names_diverged(str(error.value), diverged)
    assert 'random image 1' in str(error.value)
    assert not osp.exists(out)
