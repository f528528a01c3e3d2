"""AttentionVisualizationHook in a short training run."""
import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from mmcal_test_utils import (NUM_ATTENTIONS, tiny_runner_cfg,
                              write_image_folder)
from mmcal.engine.hooks import (AttentionVisualizationHook,
                                attention_visualization_hook)
from mmcal.visualization import attention_figure_shape


@pytest.fixture(scope='module')
def hooked_run(tmp_path_factory):
    """Two epochs, validating after each, drawing every second epoch."""
    root = tmp_path_factory.mktemp('hooked')
    data_root = write_image_folder(str(root / 'data'))
    cfg = Config(tiny_runner_cfg(data_root, str(root / 'work'),
                                 max_epochs=2))
    cfg.custom_hooks = [
        dict(type='AttentionVisualizationHook', interval=2, num_images=2,
             raise_errors=True)
    ]
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def test_hook_draws_pictures_every_interval(hooked_run):
    work_dir = hooked_run.work_dir
    assert not osp.exists(osp.join(work_dir, 'attention', 'epoch_1'))
    pictures = sorted(glob.glob(osp.join(work_dir, 'attention', 'epoch_2',
                                         '*.png')))
    # Validation images 0 and 11 of 12: class_0/0.png and class_2/3.png.
    assert [osp.basename(p) for p in pictures] == ['00_0.png', '01_3.png']
    height, width = attention_figure_shape(NUM_ATTENTIONS)
    for picture in pictures:
        with Image.open(picture) as image:
            assert image.size == (width, height)
            assert np.unique(np.asarray(image.convert('L'))).size > 10
    # The same pictures went to the visualiser's local backend.
    backend = glob.glob(osp.join(work_dir, '*', 'vis_data', 'vis_image',
                                 'attention_*_2.png'))
    assert len(backend) == 2


def test_hook_logs_statistics_with_every_validation(hooked_run):
    log = [
        path for path in glob.glob(
            osp.join(hooked_run.work_dir, '*', 'vis_data', '*.json'))
        if not path.endswith('scalars.json')
    ][0]
    with open(log) as file:
        records = [json.loads(line) for line in file]
    validations = [r for r in records if 'accuracy/top1' in r]
    assert len(validations) == 2
    for record in validations:
        assert 0 <= record['attention/entropy'] <= 1
        assert record['attention/peak_ratio'] >= 1
        assert 0 <= record['attention/dead_fraction'] <= 1
    # Training records are not touched by the hook.
    assert not any('attention/entropy' in r for r in records if 'lr' in r)


def test_a_failing_drawing_only_warns(hooked_run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('no canvas')

    warnings = []
    monkeypatch.setattr(attention_visualization_hook, 'draw_view_figure',
                        broken)
    monkeypatch.setattr(hooked_run.logger, 'warning', warnings.append)
    hook = AttentionVisualizationHook(interval=1, num_images=1,
                                      out_dir='broken')
    hook.after_val_epoch(hooked_run)
    assert len(warnings) == 1 and 'no canvas' in warnings[0]
    assert os.listdir(osp.join(hooked_run.work_dir, 'broken',
                               'epoch_2')) == []
    strict = AttentionVisualizationHook(interval=1, num_images=1,
                                        out_dir='broken', raise_errors=True)
    with pytest.raises(RuntimeError, match='no canvas'):
        strict.after_val_epoch(hooked_run)
    assert len(warnings) == 1


def test_model_mode_is_restored(hooked_run):
    model = hooked_run.model
    model.train()
    AttentionVisualizationHook(num_images=1,
                               out_dir='mode').after_val_epoch(hooked_run)
    assert model.training
    assert osp.isfile(osp.join(hooked_run.work_dir, 'mode', 'epoch_2',
                               '00_0.png'))


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match='interval'):
        AttentionVisualizationHook(interval=0)


def test_ddp_wrapped_model_is_unwrapped(hooked_run, monkeypatch):
    import socket

    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    try:
        monkeypatch.setattr(hooked_run, 'model',
                            MMDistributedDataParallel(hooked_run.model))
        AttentionVisualizationHook(num_images=1,
                                   out_dir='ddp').after_val_epoch(hooked_run)
    finally:
        dist.destroy_process_group()
    assert osp.isfile(osp.join(hooked_run.work_dir, 'ddp', 'epoch_2',
                               '00_0.png'))
