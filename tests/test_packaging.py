"""What an install holds: configs and tools inside the package (named
``mmcal::...`` as mmpretrain's are ``mmpretrain::...``), from a wheel and
from an editable install, and an ``import mmcal`` that draws nothing."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from mmengine.config import Config

from mmcal_test_utils import ROOT

from mmcal.datasets.synthetic import write_synthetic_birds

RECIPE = 'cal_r152_birds.py'
# A user's configs that start from mmcal's: a recipe, a base part of one
# (whose own _base_ paths are relative), a mixing config (whose base is
# mmpretrain's own).
USER_CONFIGS = {
    'recipe.py': f"_base_ = 'mmcal::{RECIPE}'\n",
    'part.py': "_base_ = ['mmcal::_base_/models/cal_resnet152_m16.py']\n",
    'mixing.py': "_base_ = 'mmcal::mixing/cal_resnet50_8xb8_cub.py'\n",
}
# Run in a fresh interpreter: which module first imports matplotlib, where
# mmcal comes from, where ``mmcal::`` leads, and what the user's configs
# become.
RESOLVE = """
import json, sys, traceback

class FirstImporter:
    of_matplotlib = None

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == 'matplotlib' and cls.of_matplotlib is None:
            cls.of_matplotlib = [
                frame.filename for frame in traceback.extract_stack()[:-1]
                if 'importlib' not in frame.filename][-1]

sys.meta_path.insert(0, FirstImporter)
import mmcal
print(json.dumps(dict(package=mmcal.__file__,
                      matplotlib_importer=FirstImporter.of_matplotlib)))
from mmengine.config import Config
path, scope = Config._get_cfg_path('mmcal::{recipe}', 'user.py')
configs = {{name: json.dumps(Config.fromfile(name).to_dict(), sort_keys=True,
                             default=str) for name in {names!r}}}
try:
    Config.fromfile('missing.py')
except FileNotFoundError as error:
    missing = str(error)
print(json.dumps(dict(path=path, scope=scope, configs=configs,
                      missing=missing)))
"""


def pip(*args, cwd=ROOT):
    result = subprocess.run([sys.executable, '-m', 'pip', *args, '-q'],
                            capture_output=True, text=True, cwd=cwd,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def user_folder(root):
    """The user's configs, and one that names a config mmcal lacks."""
    os.makedirs(root)
    for name, text in USER_CONFIGS.items():
        with open(osp.join(root, name), 'w') as file:
            file.write(text)
    with open(osp.join(root, 'missing.py'), 'w') as file:
        file.write("_base_ = 'mmcal::cal_r999.py'\n")
    return root


def resolve_in(user_dir, env, flags=(), prefix=''):
    """RESOLVE run in ``user_dir``, after ``prefix`` (code that puts the
    install on the path): what the import showed, and what resolving did
    (its findings, or the error)."""
    code = prefix + RESOLVE.format(recipe=RECIPE, names=sorted(USER_CONFIGS))
    result = subprocess.run([sys.executable, *flags, '-c', code],
                            capture_output=True, text=True, cwd=user_dir,
                            env=env, timeout=300)
    findings = [json.loads(line) for line in result.stdout.splitlines()
                if line.startswith('{')]
    assert findings, result.stderr[-3000:]
    if len(findings) == 1:
        return findings[0], result.stderr[-3000:]
    return findings[0], findings[1]


def source_configs():
    """What the user's configs are when their bases are read from the
    source tree's configs/ by path."""
    sources = dict(
        (name, text.replace('mmcal::', osp.join(ROOT, 'configs') + '/'))
        for name, text in USER_CONFIGS.items())
    configs = {}
    for name, text in sources.items():
        cfg = Config.fromstring(text, '.py')
        configs[name] = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return configs


def clean_env(**extra):
    env = {key: value for key, value in os.environ.items()
           if key != 'PYTHONPATH'}
    return dict(env, OMP_NUM_THREADS='1', **extra)


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel of this source tree, and a folder it is installed into
    (``pip install --target``: an ordinary install, not an editable one)."""
    root = tmp_path_factory.mktemp('wheel')
    pip('wheel', '--no-deps', '--no-build-isolation', '-w', str(root), ROOT)
    path, = glob.glob(str(root / 'mmcal-*.whl'))
    site = str(root / 'site')
    pip('install', '--no-deps', '--target', site, path)
    return dict(path=path, site=site, root=root)


def shipped_files(folder):
    return sorted(
        osp.relpath(path, ROOT)
        for pattern in ('**/*.py', '**/*.sh')
        for path in glob.glob(osp.join(ROOT, folder, pattern),
                              recursive=True))


def test_wheel_holds_every_config_and_tool(wheel):
    with zipfile.ZipFile(wheel['path']) as archive:
        names = set(archive.namelist())
    expected = shipped_files('configs') + shipped_files('tools')
    assert RECIPE in ' '.join(expected) and 'tools/train.py' in expected
    assert [name for name in expected
            if 'mmcal/.mim/' + name not in names] == []


@pytest.fixture(scope='module')
def from_wheel(wheel, tmp_path_factory):
    """RESOLVE's findings with the wheel's install first on the path."""
    user_dir = user_folder(str(tmp_path_factory.mktemp('user') / 'configs'))
    return resolve_in(user_dir, clean_env(PYTHONPATH=wheel['site']))


def test_import_mmcal_does_not_import_matplotlib(wheel, from_wheel):
    # Only drawing needs matplotlib (half a second of every import), and
    # mmpretrain does not import it.
    imported, _ = from_wheel
    installed = osp.join(wheel['site'], 'mmcal')
    assert imported['package'] == osp.join(installed, '__init__.py')
    assert imported['matplotlib_importer'] is None


def test_mmcal_scope_resolves_from_an_ordinary_install(wheel, from_wheel):
    _, found = from_wheel
    assert isinstance(found, dict), found
    installed = osp.join(wheel['site'], 'mmcal')
    assert found['path'] == osp.join(installed, '.mim', 'configs', RECIPE)
    assert found['scope'] is None
    assert found['configs'] == source_configs()
    assert "'mmcal::cal_r999.py'" in found['missing']
    assert 'names no config of mmcal' in found['missing']


def test_shipped_tool_trains_a_user_config_from_an_ordinary_install(
        wheel, tmp_path):
    # A user's config on the demo's recipe, trained by the train.py that
    # the wheel installed (2 epochs of one iteration on 2 tiny images).
    data_root = str(tmp_path / 'birds')
    write_synthetic_birds(data_root, num_classes=2, per_class=2, size=32,
                          test_fraction=0.5)
    config = tmp_path / 'my_cal.py'
    config.write_text(
        "_base_ = 'mmcal::cal_r18_synthetic-birds.py'\n"
        'model = dict(head=dict(num_classes=2))\n')
    tool = osp.join(wheel['site'], 'mmcal', '.mim', 'tools', 'train.py')
    options = [
        f'train_dataloader.dataset.data_root={data_root}',
        'train_cfg.max_epochs=2', 'train_dataloader.batch_size=2',
        'custom_hooks=[]', 'log_level=WARNING'
    ]
    result = subprocess.run(
        [sys.executable, tool, str(config), '--no-validate', '--work-dir',
         str(tmp_path / 'work'), '--cfg-options', *options],
        capture_output=True, text=True, cwd=str(tmp_path),
        env=clean_env(PYTHONPATH=wheel['site']), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert osp.isfile(tmp_path / 'work' / 'epoch_2.pth')


def test_mmcal_scope_resolves_from_an_editable_install(tmp_path):
    # The install ``make setup`` makes (pip install -e .), here into a
    # folder of its own; -S keeps the shared environment's own editable
    # mmcal from being found first.
    site_dir = str(tmp_path / 'site')
    pip('install', '--no-deps', '--no-build-isolation', '--target', site_dir,
        '-e', ROOT)
    user_dir = user_folder(str(tmp_path / 'user'))
    prefix = ('import site; '
              f'site.addsitedir({site_dir!r}); '
              f'site.addsitedir({sysconfig.get_paths()["purelib"]!r})\n')
    imported, found = resolve_in(user_dir, clean_env(), ['-S'], prefix)
    assert imported['package'] == osp.join(ROOT, 'mmcal', '__init__.py')
    assert isinstance(found, dict), found
    # The source tree's configs themselves: edits show at once.
    assert osp.realpath(found['path']) == osp.join(ROOT, 'configs', RECIPE)
    assert found['configs'] == source_configs()
