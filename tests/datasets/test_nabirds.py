"""NABirds: the official layout (hex image ids, a taxonomy whose leaves
label the images) read with every annotation file checked, errors naming
file:line."""
import os.path as osp

import pytest
from mmcal_test_utils import write_nabirds_files
from mmpretrain.registry import DATASETS

import mmcal.datasets  # noqa: F401

A, B, C, D, E = (f'{n:032x}' for n in (0xa1, 0xb2, 0xc3, 0xd4, 0xe5))
# A dashed UUID, as in the official files.
F = '0000139e-21dc-4d0c-bfe1-4cae3c85c829'
# The taxonomy: 0 Birds > 3 Hawks > {295 Red-tailed Hawk > 817, 818},
# 0 > 7 Ducks > 40 Mallard. Leaves 40, 817, 818 label images; 295 too.
CLASSES = {0: 'Birds', 3: 'Hawks and Eagles', 7: 'Ducks', 40: 'Mallard',
           295: 'Red-tailed Hawk', 817: 'Red-tailed Hawk (Adult)',
           818: 'Red-tailed Hawk (Immature)'}
HIERARCHY = {3: 0, 7: 0, 40: 7, 295: 3, 817: 295, 818: 295}
# (image id, path, class id, train flag), not in class order.
ROWS = [(A, '0817/a 1.jpg', 817, 1), (B, '0040/b.jpg', 40, 1),
        (C, '0817/c.jpg', 817, 0), (D, '0818/d.jpg', 818, 1),
        (E, '0295/e.jpg', 295, 0), (F, '0040/f.jpg', 40, 0)]


def write(tmp_path, rows=ROWS, classes=CLASSES, hierarchy=HIERARCHY,
          **replace):
    return write_nabirds_files(str(tmp_path), rows, classes, hierarchy,
                               **replace)


def build(root, split='train', **kwargs):
    return DATASETS.build(
        dict(type='NABirds', data_root=root, split=split, **kwargs))


def samples(dataset):
    images = osp.join(dataset.data_root, 'images')
    return [(osp.relpath(info['img_path'], images), info['gt_label'])
            for info in dataset]


def test_labelling_ids_become_contiguous_labels_in_id_order(tmp_path):
    root = write(tmp_path)
    train, test = build(root), build(root, 'test')
    # Labels 0..3 are class ids 40, 295, 817, 818.
    assert train.CLASSES == ('Mallard', 'Red-tailed Hawk',
                             'Red-tailed Hawk (Adult)',
                             'Red-tailed Hawk (Immature)')
    assert train.metainfo['class_ids'] == (40, 295, 817, 818)
    assert samples(train) == [('0817/a 1.jpg', 2), ('0040/b.jpg', 0),
                              ('0818/d.jpg', 3)]
    assert samples(test) == [('0817/c.jpg', 2), ('0295/e.jpg', 1),
                             ('0040/f.jpg', 0)]
    assert len(train) + len(test) == len(ROWS)
    assert test.CLASSES == train.CLASSES


def test_metainfo_holds_each_class_s_ancestors_by_name(tmp_path):
    dataset = build(write(tmp_path))
    assert dataset.metainfo['ancestors'] == (
        ('Ducks', 'Birds'), ('Hawks and Eagles', 'Birds'),
        ('Red-tailed Hawk', 'Hawks and Eagles', 'Birds'),
        ('Red-tailed Hawk', 'Hawks and Eagles', 'Birds'))


def test_dashed_and_plain_spellings_are_one_image_id(tmp_path):
    plain = F.replace('-', '').upper()
    labels = ''.join(f'{plain if i == F else i} {c}\n'
                     for i, _, c, _ in ROWS)
    assert samples(build(write(tmp_path, image_class_labels_txt=labels),
                         'test'))[-1] == ('0040/f.jpg', 0)


def replaced(rows, index, **fields):
    row = dict(zip(('id', 'path', 'label', 'flag'), rows[index]), **fields)
    return rows[:index] + [tuple(row.values())] + rows[index + 1:]


@pytest.mark.parametrize('replace, where, reason', [
    (dict(images_txt=f'{A} a.jpg\nnohex b.jpg\n'), 'images.txt:2',
     '32 hex digits'),
    (dict(images_txt=f'{A}\n'), 'images.txt:1', 'expected'),
    (dict(images_txt=b'\n' + A.encode() + b' \xff.jpg\n'), 'images.txt:2',
     'not UTF-8'),
    (dict(classes_txt='0 Birds\n3 Hawks\n3 Again\n'), 'classes.txt:3',
     'duplicate class id 3'),
    (dict(classes_txt='0 Birds\nx Hawks\n'), 'classes.txt:2',
     'class id must be a whole number'),
    (dict(hierarchy_txt='3 0\n3 7\n'), 'hierarchy.txt:2',
     'duplicate child id 3'),
    (dict(hierarchy_txt='3 0\n7 9\n'), 'hierarchy.txt:2',
     'parent id 9 is not in'),
    (dict(hierarchy_txt='3 0\n5 0\n'), 'hierarchy.txt:2',
     'child id 5 is not in'),
    (dict(hierarchy_txt='3 295\n295 817\n817 3\n'), 'hierarchy.txt:',
     'a cycle of parents'),
    (dict(hierarchy_txt='7 7\n'), 'hierarchy.txt:1', 'cycle'),
    (dict(train_test_split_txt=f'{A} 1\n{B} 2\n'), 'train_test_split.txt:2',
     r'must be 1 \(train\) or 0 \(test\)'),
])
def test_a_faulty_file_is_refused_naming_file_and_line(
        tmp_path, replace, where, reason):
    root = write(tmp_path, **replace)
    with pytest.raises(ValueError, match=reason) as error:
        build(root)
    assert osp.join(root, where) in str(error.value)


@pytest.mark.parametrize('rows, where, reason', [
    (replaced(ROWS, 3, label=5), 'image_class_labels.txt:4',
     'class id 5 is not in'),
    (replaced(ROWS, 3, path='0817/a 1.jpg'), 'images.txt:4',
     "'0817/a 1.jpg' is already listed as id"),
    (replaced(ROWS, 3, path='./0817/a 1.jpg'), 'images.txt:4',
     'already listed'),
    (replaced(ROWS, 3, id=A), 'image_class_labels.txt:4',
     'duplicate image id'),
    (replaced(ROWS, 3, path='../../etc/x.jpg'), 'images.txt:4',
     'leaves the image folder'),
])
def test_a_faulty_row_is_refused_naming_file_and_line(
        tmp_path, rows, where, reason):
    with pytest.raises(ValueError, match=reason) as error:
        build(write(tmp_path, rows))
    assert osp.join(str(tmp_path), where) in str(error.value)


def test_an_id_missing_from_a_file_is_named(tmp_path):
    split = ''.join(f'{i} {s}\n' for i, _, _, s in ROWS[:-1])
    with pytest.raises(ValueError, match=f'no line for image id '
                       f'{F.replace("-", "")}') as error:
        build(write(tmp_path, train_test_split_txt=split))
    assert osp.join(str(tmp_path), 'train_test_split.txt') in str(
        error.value)
    extra = ROWS + [(f'{0xf6:032x}', 'x.jpg', 40, 1)]
    labels = ''.join(f'{i} {c}\n' for i, _, c, _ in extra)
    with pytest.raises(ValueError, match='is not in') as error:
        build(write(tmp_path, image_class_labels_txt=labels))
    assert 'image_class_labels.txt:7' in str(error.value)


def test_images_outside_the_root_read_when_allowed(tmp_path):
    rows = replaced(ROWS, 3, path='../elsewhere/d.jpg')
    dataset = build(write(tmp_path, rows), allow_outside_root=True)
    assert ('../elsewhere/d.jpg', 3) in samples(dataset)


def test_an_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'val'"):
        build(write(tmp_path), 'val')
