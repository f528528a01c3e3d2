"""CheckedStanfordCars: the Stanford Cars devkit and cars_annos.mat layouts
read through mat4py, every record checked, errors naming file and record."""
import os
import sys

import mat4py
import pytest
from mmpretrain.registry import DATASETS

from mmcal.datasets import CheckedStanfordCars

CLASSES = ('AM General Hummer SUV 2000', 'Acura RL Sedan 2012',
           'Audi S4 Sedan 2007')
TRAIN = [('00001.jpg', 3), ('00002.jpg', 1), ('00003.jpg', 2)]
TEST = [('00001.jpg', 2), ('00002.jpg', 3)]


def write_devkit(root, train=TRAIN, test=TEST, class_names=CLASSES):
    """``devkit/cars_meta.mat`` and the two annotation files as the devkit
    has them (struct arrays of ``fname`` and ``class``), and an (empty)
    image per record."""
    os.makedirs(root / 'devkit', exist_ok=True)
    mat4py.savemat(str(root / 'devkit' / 'cars_meta.mat'),
                   dict(class_names=list(class_names)))
    for split, rows, name in (('train', train, 'cars_train_annos.mat'),
                              ('test', test, 'cars_test_annos_withlabels'
                               '.mat')):
        os.makedirs(root / f'cars_{split}', exist_ok=True)
        for fname, _ in rows:
            if isinstance(fname, str) and '/' not in fname:
                (root / f'cars_{split}' / fname).write_bytes(b'')
        mat4py.savemat(str(root / 'devkit' / name), dict(annotations=dict(
            fname=[f for f, _ in rows], **{'class': [c for _, c in rows]})))
    return str(root)


def build(root, split='train', classes=CLASSES, **kwargs):
    return DATASETS.build(
        dict(type='CheckedStanfordCars', data_root=root, split=split,
             metainfo=dict(classes=classes), **kwargs))


def samples(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_reads_devkit_layout(tmp_path):
    root = write_devkit(tmp_path)
    train = build(root)
    assert isinstance(train, CheckedStanfordCars)
    assert train.CLASSES == CLASSES
    assert [(s['img_path'], s['gt_label']) for s in samples(train)] == [
        (os.path.join(root, 'cars_train', f), c - 1) for f, c in TRAIN]
    test = build(root, split='test')
    assert test.test_mode
    assert [s['gt_label'] for s in samples(test)] == [1, 2]


def test_reads_single_record_file(tmp_path):
    """mat4py gives a one-record struct array as bare values."""
    root = write_devkit(tmp_path, train=[('00001.jpg', 2)])
    assert [s['gt_label'] for s in samples(build(root))] == [1]


def test_reads_cars_annos_layout(tmp_path):
    """The other layout: cars_annos.mat with a test flag per record."""
    os.makedirs(tmp_path / 'car_ims')
    rows = [('car_ims/000001.jpg', 1, 0), ('car_ims/000002.jpg', 3, 1),
            ('car_ims/000003.jpg', 2, 0)]
    for name, _, _ in rows:
        (tmp_path / name).write_bytes(b'')
    mat4py.savemat(str(tmp_path / 'cars_annos.mat'), dict(
        class_names=list(CLASSES),
        annotations=dict(relative_im_path=[r[0] for r in rows],
                         test=[r[2] for r in rows],
                         **{'class': [r[1] for r in rows]})))
    assert [s['gt_label'] for s in samples(build(str(tmp_path)))] == [0, 1]
    test = build(str(tmp_path), split='test')
    assert [s['gt_label'] for s in samples(test)] == [2]


@pytest.mark.parametrize('train, reason', [
    ([('00001.jpg', 1), ('00002.jpg', 197)],
     'annotation 2: class 197 is outside 1..3'),
    ([('00001.jpg', 1), ('00002.jpg', 0)],
     'annotation 2: class 0 is outside 1..3'),
    ([('00001.jpg', 1), ('00002.jpg', 1.5)],
     'annotation 2: class must be a whole number, got 1.5'),
    ([('00001.jpg', 1), ('00002.jpg', 2), ('./00001.jpg', 3)],
     "annotation 3: image './00001.jpg' is already listed as annotation 1"),
    ([('00001.jpg', 1), (7, 2)],
     'annotation 2: fname must be a file name, got 7'),
    ([('00001.jpg', 1), ('../cars_test/00001.jpg', 2)],
     'cars_train_annos.mat:2: image name'),
])
def test_refuses_bad_records_by_file_and_index(tmp_path, train, reason):
    root = write_devkit(tmp_path, train=train)
    with pytest.raises(ValueError) as error:
        build(root)
    assert 'cars_train_annos.mat' in str(error.value)
    assert reason in str(error.value)


def test_refuses_missing_image(tmp_path):
    root = write_devkit(tmp_path)
    os.remove(tmp_path / 'cars_train' / '00003.jpg')
    with pytest.raises(ValueError, match=r'cars_train_annos.mat: annotation '
                       r'3: image .*cars_train/00003.jpg does not exist'):
        build(root)


def test_refuses_class_name_count(tmp_path):
    root = write_devkit(tmp_path, class_names=CLASSES[:2])
    with pytest.raises(ValueError, match='cars_meta.mat lists 2 class names '
                       'but the data set declares 3'):
        build(root)
    # Without metainfo, mmpretrain's 196 classes are declared.
    root = write_devkit(tmp_path)
    with pytest.raises(ValueError, match='declares 196'):
        DATASETS.build(dict(type='CheckedStanfordCars', data_root=root))


def test_refuses_malformed_files(tmp_path):
    root = write_devkit(tmp_path)
    annos = tmp_path / 'devkit' / 'cars_train_annos.mat'
    mat4py.savemat(str(annos), dict(annotations=dict(
        fname=['00001.jpg', '00002.jpg'], **{'class': [1]})))
    with pytest.raises(ValueError, match='cars_train_annos.mat: 2 fname '
                       'values but 1 class values'):
        build(root)
    mat4py.savemat(str(annos), dict(annotations=dict(fname=['00001.jpg'])))
    with pytest.raises(ValueError, match="cars_train_annos.mat: the "
                       "annotations have no 'class' field"):
        build(root)
    annos.write_bytes(b'MATLAB 5.0 MAT-file, not really')
    with pytest.raises(ValueError, match='cars_train_annos.mat: not a '
                       'MATLAB file mat4py can read'):
        build(root)


def test_missing_mat4py_names_the_extra(tmp_path, monkeypatch):
    root = write_devkit(tmp_path)
    # None in sys.modules makes `import mat4py` raise ImportError.
    monkeypatch.setitem(sys.modules, 'mat4py', None)
    with pytest.raises(ImportError, match=r'cars_meta.mat: reading Stanford '
                       r'Cars needs mat4py: pip install "mmcal\[cars\]"'):
        build(root)
