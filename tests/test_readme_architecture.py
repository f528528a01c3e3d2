"""The README's Architecture section names every module of the package,
and every path it names exists."""
import glob
import os.path as osp
import re

from mmcal_test_utils import ROOT


def architecture_section():
    with open(osp.join(ROOT, 'README.md')) as file:
        text = file.read()
    return text.split('## Architecture\n', 1)[1].split('\n## ', 1)[0]


def named_paths(section):
    """Paths in backticks; a bare file name continues the folder of the
    full path before it in the same bullet."""
    paths, folder = [], None
    for line in section.splitlines():
        if line.startswith('- ') or not line.strip():
            folder = None
        for name in re.findall(r'`([\w/]+\.py)`', line):
            if '/' in name:
                folder = osp.dirname(name)
                paths.append(name)
            elif folder:
                paths.append(osp.join(folder, name))
    return paths


def test_every_module_is_in_the_architecture_section():
    named = set(named_paths(architecture_section()))
    modules = {
        osp.relpath(path, ROOT)
        for path in glob.glob(osp.join(ROOT, 'mmcal', '**', '*.py'),
                              recursive=True)
        if osp.basename(path) not in ('__init__.py', 'version.py')
    }
    assert modules - named == set()
    assert {path for path in named if path.startswith('mmcal/')} - modules \
        == set()
