"""A tiny CAL model trained once per test process for the inference tools.

Not a conftest: a second ``conftest`` module would shadow ``tests/conftest``
for the ``from mmcal_test_utils import ...`` of the other test modules.
"""
import glob
import os.path as osp
from types import SimpleNamespace

from mmengine.config import Config
from mmengine.runner import Runner

from mmcal_test_utils import (  # noqa: F401 (re-exported)
    ROOT, load_tool, tiny_runner_cfg, write_image_folder)

CLASSES = ['class_0', 'class_1', 'class_2']
# Images of the tiny run's folder in an order of no sort, for list files.
LIST_ORDER = ['class_2/1.png', 'class_0/3.png', 'class_1/0.png',
              'class_0/0.png', 'class_2/3.png']
_RUN = {}


def trained_tiny_run(tmp_path_factory) -> SimpleNamespace:
    """Two epochs on 3 classes x 4 images (40 px, resized to 32).

    Trained on first use, then shared. Returns the config file, the last
    checkpoint, the data root, the work dir, the json log and the classes.
    """
    if not _RUN:
        root = tmp_path_factory.mktemp('tiny_run')
        data_root = write_image_folder(str(root / 'data'))
        work_dir = str(root / 'work')
        cfg = Config(tiny_runner_cfg(data_root, work_dir, max_epochs=2))
        config = str(root / 'tiny_cal.py')
        cfg.dump(config)
        Runner.from_cfg(cfg).train()
        json_logs = [
            log for log in glob.glob(
                osp.join(work_dir, '*', 'vis_data', '*.json'))
            if not log.endswith('scalars.json')
        ]
        _RUN['run'] = SimpleNamespace(
            config=config,
            checkpoint=osp.join(work_dir, 'epoch_2.pth'),
            data_root=data_root,
            work_dir=work_dir,
            json_log=json_logs[0],
            classes=CLASSES)
    return _RUN['run']
