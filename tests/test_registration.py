import importlib
import subprocess
import sys

from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
from mmpretrain.registry import MODELS

import mmcal


def test_components_are_registered_in_mmpretrain():
    for name in ('BAPNeck', 'CALHead', 'AttentionCropDrop', 'CALClassifier'):
        assert MODELS.get(name) is not None, name
    assert MODELS.get('BAPNeck').__module__.startswith('mmcal.')


def test_reimport_and_custom_imports_do_not_register_twice(tmp_path):
    importlib.reload(importlib.import_module('mmcal'))
    import_modules_from_strings(['mmcal'])
    config = tmp_path / 'cfg.py'
    config.write_text("custom_imports = dict(imports=['mmcal'], "
                      'allow_failed_imports=False)\n')
    Config.fromfile(str(config))
    assert MODELS.get('CALHead').__module__ == 'mmcal.models.heads.cal_head'


def test_plain_import_registers_in_a_fresh_process():
    code = ('import mmcal; from mmpretrain.registry import MODELS; '
            "assert MODELS.get('CALClassifier') is not None; "
            'import mmcal; print(mmcal.__version__)')
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == mmcal.__version__
