"""The README's Python inference example, run as written on the demo's
config, with a checkpoint of that config trained here for one iteration."""
import os
import os.path as osp
import re

import pytest
from mmengine.runner import Runner

from mmcal_test_utils import StopAfterFirstEpoch
from mmcal.datasets.synthetic import DEMO_SET, write_synthetic_birds
from mmcal.runtime.runner import DATALOADERS, load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/cal_r18_synthetic-birds.py'


def readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in README.md."""
    with open(osp.join(ROOT, 'README.md')) as file:
        text = file.read()
    section = text[text.index(heading):]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


@pytest.fixture(scope='module')
def demo_layout(tmp_path_factory):
    """A folder laid out as after ``make demo``: configs/, the synthetic
    birds in data/synthetic_birds and a CAL checkpoint at the path the demo
    writes (work_dirs/demo/cal/epoch_6.pth)."""
    root = tmp_path_factory.mktemp('demo_layout')
    os.symlink(osp.join(ROOT, 'configs'), root / 'configs')
    data_root = str(root / 'data' / 'synthetic_birds')
    # The demo's set (about a second).
    write_synthetic_birds(data_root, **DEMO_SET)
    cfg = load_config(osp.join(ROOT, CONFIG))
    for loader in DATALOADERS:
        cfg[loader].dataset.data_root = data_root
    # One iteration of 4 images; the model is the config's, unchanged.
    cfg.train_dataloader.dataset.indices = 4
    cfg.train_dataloader.batch_size = 4
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h.type != 'AttentionVisualizationHook']
    work_dir = root / 'work_dirs' / 'demo' / 'cal'
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.register_hook(StopAfterFirstEpoch())
    runner.train()
    os.rename(work_dir / 'epoch_1.pth', work_dir / 'epoch_6.pth')
    return root


def test_readme_inference_example_runs_as_written(demo_layout, monkeypatch,
                                                  capsys):
    code = readme_block('### Python inference API')
    assert CONFIG in code and 'work_dirs/demo/cal/epoch_6.pth' in code
    monkeypatch.chdir(demo_layout)
    exec(compile(code, 'README.md', 'exec'), {})
    # mmpretrain draws a progress bar on the same stream.
    printed = capsys.readouterr().out
    (pred_class, score), = re.findall(r'(\d{3}\.Species_\d{3}) ([\d.e-]+)\n',
                                      printed)
    assert 0 < float(score) <= 1
    # The same model through get_model: the same class.
    assert re.findall(r'(\d{3}\.Species_\d{3})\n', printed) == [pred_class]
