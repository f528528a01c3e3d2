"""FIFOs, devices and folders where an image should be: refused or skipped
by name, never read. Each attack runs in a child process with a timeout
(opening a FIFO blocks; /dev/zero reads forever) and an address-space limit
(so that reading /dev/zero cannot take the machine's memory)."""
import json
import os
import subprocess
import sys

from PIL import Image

from mmcal_test_utils import ROOT

LOAD_EACH = """
import json, re, resource, sys
from mmcal.datasets import CUBFolder
from mmcal.datasets.transforms import LoadImageSafely

# 1 GiB more address space than the imports took.
with open('/proc/self/status') as status:
    size = int(re.search(r'VmSize:\\s+(\\d+) kB', status.read())[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, size + 2**30))

def outcome(call):
    try:
        return 'skipped' if call() is None else 'loaded'
    except Exception as error:
        return f'{type(error).__name__}: {error}'

root, paths = sys.argv[1], sys.argv[2:]
report = {}
for path in paths:
    report[path] = [
        outcome(lambda: LoadImageSafely()(dict(img_path=path))),
        outcome(lambda: LoadImageSafely(skip_broken=True)(
            dict(img_path=path)))]
# The same files listed in a CUB layout's images.txt, read as training
# reads them: BaseDataset draws another image for one skipped.
for skip_broken in (False, True):
    dataset = CUBFolder(
        data_root=root, allow_outside_root=True,
        pipeline=[dict(type='LoadImageSafely', skip_broken=skip_broken)])
    report[f'dataset skip_broken={skip_broken}'] = [
        outcome(lambda: dataset[index]) for index in range(len(dataset))]
print(json.dumps(report))
"""


def test_fifo_devices_and_folders_are_refused_or_skipped_by_name(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    Image.new('RGB', (8, 8), (1, 2, 3)).save(images / 'good.png')
    os.mkfifo(images / 'b.jpg')
    os.symlink('/dev/zero', images / 'zero.jpg')
    (images / 'folder.jpg').mkdir()
    names = ['good.png', 'b.jpg', 'zero.jpg', '/dev/zero', 'folder.jpg']
    for name, content in {
            'images.txt': [f'{i} {n}' for i, n in enumerate(names, 1)],
            'image_class_labels.txt': [f'{i} 1' for i in range(1, 6)],
            'train_test_split.txt': [f'{i} 1' for i in range(1, 6)],
            'classes.txt': ['1 bird']}.items():
        (tmp_path / name).write_text('\n'.join(content) + '\n')
    paths = [str(images / name) for name in names[1:3]] + names[3:4] + [
        str(images / 'folder.jpg')]
    result = subprocess.run(
        [sys.executable, '-c', LOAD_EACH, str(tmp_path), *paths],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    fifo, link, zero, folder = paths
    assert report[fifo] == [
        f'OSError: Cannot read image {fifo}: it is a FIFO, not a regular '
        'file', 'skipped']
    assert report[link] == [
        f'OSError: Cannot read image {link} (a link to /dev/zero): it is a '
        'character device, not a regular file', 'skipped']
    assert report[zero] == [
        'OSError: Cannot read image /dev/zero: it is a character device, '
        'not a regular file', 'skipped']
    assert report[folder] == [
        f'OSError: Cannot read image {folder}: it is a folder, not a regular '
        'file', 'skipped']
    strict = report['dataset skip_broken=False']
    assert strict[0] == 'loaded'
    assert [message.split(': it is ')[1] for message in strict[1:]] == [
        'a FIFO, not a regular file',
        'a character device, not a regular file',
        'a character device, not a regular file',
        'a folder, not a regular file']
    assert report['dataset skip_broken=True'] == ['loaded'] * 5
