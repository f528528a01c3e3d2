"""mmpretrain's analyze_logs.py plot_curve on an mmcal run's json log."""
import os.path as osp
import runpy
import sys

import matplotlib
import mmpretrain
import numpy as np
import pytest
from PIL import Image
from tiny_training import trained_tiny_run

ANALYZE_LOGS = osp.join(
    osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'analysis_tools',
    'analyze_logs.py')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


def test_plot_curve_draws_cal_losses_accuracy_and_lr(tiny_run, tmp_path,
                                                     monkeypatch, capsys):
    matplotlib.use('Agg')
    out = str(tmp_path / 'curves.png')
    keys = ['loss_raw', 'loss_aug', 'loss_effect', 'loss_center', 'lr',
            'accuracy/top1']
    monkeypatch.setattr(sys, 'argv', [
        ANALYZE_LOGS, 'plot_curve', tiny_run.json_log, '--keys', *keys,
        '--out', out
    ])
    runpy.run_path(ANALYZE_LOGS, run_name='__main__')
    printed = capsys.readouterr().out
    for key in keys:
        assert f'metric is {key}' in printed
    with Image.open(out) as image:
        assert image.size[0] > 100 and image.size[1] > 100
        assert np.unique(np.asarray(image.convert('L'))).size > 10
