import filecmp
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
from PIL import Image

from mmcal.datasets.synthetic import PART_NAMES, write_synthetic_birds


def _read_table(path):
    with open(path) as file:
        return [line.split() for line in file if line.strip()]


def _images(root):
    return sorted(
        osp.join(folder, name) for folder, _, names in os.walk(
            osp.join(root, 'images')) for name in names)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kwargs = dict(num_classes=3, per_class=3, size=40)
    write_synthetic_birds(str(tmp_path / 'a'), seed=1, **kwargs)
    write_synthetic_birds(str(tmp_path / 'b'), seed=1, **kwargs)
    write_synthetic_birds(str(tmp_path / 'c'), seed=2, **kwargs)
    files_a, files_b = _images(tmp_path / 'a'), _images(tmp_path / 'b')
    assert len(files_a) == 9
    for a, b in zip(files_a, files_b):
        assert filecmp.cmp(a, b, shallow=False)
    for name in ('bounding_boxes.txt', 'parts/part_boxes.txt'):
        assert filecmp.cmp(tmp_path / 'a' / name, tmp_path / 'b' / name,
                           shallow=False)
    assert not filecmp.cmp(files_a[0], _images(tmp_path / 'c')[0],
                           shallow=False)


def test_cub_layout_read_by_mmpretrain(tmp_path):
    from mmpretrain.datasets import CUB
    counts = write_synthetic_birds(str(tmp_path), num_classes=4, per_class=5,
                                   size=32, seed=0, test_fraction=0.4)
    assert counts == dict(train=12, test=8)
    train = CUB(data_root=str(tmp_path), split='train')
    test = CUB(data_root=str(tmp_path), split='test')
    assert len(train) == 12 and len(test) == 8
    # 3 train and 2 test images per class; labels follow the class folders.
    assert np.bincount(train.get_gt_labels()).tolist() == [3] * 4
    assert np.bincount(test.get_gt_labels()).tolist() == [2] * 4
    for info in list(train) + list(test):
        folder = osp.basename(osp.dirname(info['img_path']))
        assert int(folder[:3]) - 1 == info['gt_label']
        with Image.open(info['img_path']) as image:
            assert image.size == (32, 32) and image.mode == 'RGB'
    assert not {i['img_path'] for i in train} & {i['img_path'] for i in test}


def test_cub_folder_names_classes_from_the_folder(tmp_path):
    from mmpretrain.registry import DATASETS
    write_synthetic_birds(str(tmp_path), num_classes=3, per_class=2,
                          size=32)
    dataset = DATASETS.build(
        dict(type='CUBFolder', data_root=str(tmp_path), split='test'))
    assert dataset.CLASSES == ('001.Species_001', '002.Species_002',
                               '003.Species_003')
    (tmp_path / 'classes.txt').write_text('1 a\n3 b\n')
    with pytest.raises(ValueError, match=r'classes.txt:2'):
        DATASETS.build(dict(type='CUBFolder', data_root=str(tmp_path)))


def test_boxes_inside_image_and_part_files_consistent(tmp_path):
    size = 48
    write_synthetic_birds(str(tmp_path), num_classes=3, per_class=4,
                          size=size, seed=3)
    num_images = 12
    parts = _read_table(tmp_path / 'parts' / 'parts.txt')
    assert [name for _, name in parts] == list(PART_NAMES)
    bird_boxes = {int(r[0]): [float(v) for v in r[1:]]
                  for r in _read_table(tmp_path / 'bounding_boxes.txt')}
    assert sorted(bird_boxes) == list(range(1, num_images + 1))
    boxes = _read_table(tmp_path / 'parts' / 'part_boxes.txt')
    locs = _read_table(tmp_path / 'parts' / 'part_locs.txt')
    assert len(boxes) == len(locs) == num_images * len(PART_NAMES)
    for box, loc in zip(boxes, locs):
        assert box[:2] == loc[:2]
        x, y, w, h = map(float, box[2:])
        assert 0 <= x and 0 <= y and w > 0 and h > 0
        assert x + w <= size and y + h <= size
        # Parts lie inside the bird; the locations are the box centres.
        bx, by, bw, bh = bird_boxes[int(box[0])]
        assert bx - 0.2 <= x and x + w <= bx + bw + 0.2
        assert by - 0.2 <= y and y + h <= by + bh + 0.2
        cx, cy, visible = float(loc[2]), float(loc[3]), loc[4]
        assert abs(cx - (x + w / 2)) <= 0.15 and abs(cy - (y + h / 2)) <= 0.15
        assert visible == '1'


CLI = osp.join(osp.dirname(__file__), '..', '..', '..', 'tools',
               'dataset_converters', 'generate_synthetic_birds.py')


def test_cli_writes_the_set(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [
        CLI, '--out', str(tmp_path), '--num-classes', '2', '--per-class', '3',
        '--size', '32', '--seed', '5'
    ])
    runpy.run_path(CLI, run_name='__main__')
    assert 'Wrote 4 train and 2 test images of 2 species' in (
        capsys.readouterr().out)
    assert len(_read_table(tmp_path / 'images.txt')) == 6
    with pytest.raises(ValueError, match='per_class'):
        write_synthetic_birds(str(tmp_path / 'x'), per_class=1)
