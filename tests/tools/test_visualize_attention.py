"""tools/visualize_attention.py writes one readable PNG per image, showing
its progress."""
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from tiny_training import load_tool, trained_tiny_run

from mmcal_test_utils import NUM_ATTENTIONS
from mmcal.visualization import attention_figure_shape


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


def test_one_png_per_image_of_the_expected_size(tiny_run, tmp_path, capsys):
    images = [osp.join(tiny_run.data_root, 'class_0', '1.png'),
              osp.join(tiny_run.data_root, 'class_2', '1.png')]
    out_dir = str(tmp_path / 'vis')
    written = load_tool('visualize_attention.py').main(
        [tiny_run.config, tiny_run.checkpoint, *images, '--out-dir', out_dir,
         '--batch-size', '4'])
    # mmengine's progress bar, as predict.py shows it.
    assert '2/2, ' in capsys.readouterr().out
    # Two images with the same file name: the second gets a suffix.
    assert [osp.basename(p) for p in written] == ['1.png', '1_1.png']
    height, width = attention_figure_shape(NUM_ATTENTIONS)
    for path in written:
        assert osp.getsize(path) > 0
        with Image.open(path) as picture:
            assert picture.size == (width, height)
            assert np.unique(np.asarray(picture.convert('L'))).size > 10
