"""CheckedCUB: the CUB-200-2011 layout read with every annotation file
checked, errors naming file:line."""
import os.path as osp

import pytest
from mmpretrain.datasets import CUB
from mmpretrain.registry import DATASETS

from mmcal.datasets import CheckedCUB, CUBFolder, write_synthetic_birds

CLASSES = ('a', 'b', 'c')
# (id, image path, label, train flag): the first two lines of each class
# are training images.
ROWS = [(1, 'x/1.jpg', 1, 1), (2, 'x/2.jpg', 1, 1), (3, 'x/3.jpg', 1, 0),
        (4, 'y/4.jpg', 2, 1), (5, 'y/5.jpg', 2, 0), (6, 'z/6.jpg', 3, 1)]


def write_layout(root, rows=ROWS, classes=CLASSES, **replace):
    """The four annotation files of ``rows``; ``replace`` maps a file name
    to the bytes or text to write instead."""
    files = {
        'images.txt': ''.join(f'{i} {p}\n' for i, p, _, _ in rows),
        'image_class_labels.txt': ''.join(f'{i} {l}\n'
                                          for i, _, l, _ in rows),
        'train_test_split.txt': ''.join(f'{i} {s}\n' for i, _, _, s in rows),
        'classes.txt': ''.join(f'{k} {n}\n'
                               for k, n in enumerate(classes, 1)),
    }
    files.update(replace)
    for name, content in files.items():
        if isinstance(content, str):
            content = content.encode()
        (root / name).write_bytes(content)
    return str(root)


def build(root, split='train', type='CUBFolder'):
    return DATASETS.build(dict(type=type, data_root=root, split=split))


def samples(dataset):
    images = osp.join(dataset.data_root, 'images')
    return [(osp.relpath(info['img_path'], images), info['gt_label'])
            for info in dataset]


def test_reads_splits_labels_and_order(tmp_path):
    root = write_layout(tmp_path)
    train, test = build(root), build(root, 'test')
    assert train.CLASSES == CLASSES
    assert samples(train) == [('x/1.jpg', 0), ('x/2.jpg', 0), ('y/4.jpg', 1),
                              ('z/6.jpg', 2)]
    assert samples(test) == [('x/3.jpg', 0), ('y/5.jpg', 1)]


def test_same_samples_as_mmpretrain_cub_on_a_generated_set(tmp_path):
    write_synthetic_birds(str(tmp_path), num_classes=3, per_class=3,
                          size=32)
    for split in ('train', 'test'):
        ours = CheckedCUB(data_root=str(tmp_path), split=split,
                          metainfo=dict(classes=CLASSES))
        theirs = CUB(data_root=str(tmp_path), split=split)
        assert isinstance(ours, CUB)
        assert [dict(i) for i in ours.data_list] == [
            dict(i) for i in theirs.data_list]


def test_blank_lines_crlf_and_byte_order_mark_are_tolerated(tmp_path):
    expected = samples(build(write_layout(tmp_path)))
    text_root = tmp_path / 'crlf'
    text_root.mkdir()
    write_layout(text_root)
    for path in text_root.iterdir():
        text = path.read_text()
        path.write_bytes(b'\xef\xbb\xbf\r\n' +
                         text.replace('\n', '\r\n\r\n').encode() + b'\n\n')
    dataset = build(str(text_root))
    assert dataset.CLASSES == CLASSES
    assert samples(dataset) == expected


def test_image_names_with_spaces_keep_them(tmp_path):
    rows = [(1, 'x/Black footed Albatross 1.jpg', 1, 1),
            (2, 'x/two  spaces.jpg', 2, 1)]
    root = write_layout(tmp_path, rows=rows, classes=('a b', 'c'))
    dataset = build(root)
    assert dataset.CLASSES == ('a b', 'c')
    assert samples(dataset) == [('x/Black footed Albatross 1.jpg', 0),
                                ('x/two  spaces.jpg', 1)]


BAD = [
    # (file, its content, error)
    ('images.txt', '1 x/1.jpg\n2\n', r'images.txt:2: expected "<image id> '
     r'<image path>", got .2.'),
    ('images.txt', '1 x/1.jpg\none x/2.jpg\n',
     r"images.txt:2: the image id must be a whole number, got 'one'"),
    ('images.txt', '1 x/1.jpg\n2 x/2.jpg\n3 x/3.jpg\n4 y/4.jpg\n'
     '5 y/5.jpg\n6 z/6.jpg\n2 z/7.jpg\n',
     r'images.txt:7: duplicate image id 2 \(first on line 2\)'),
    ('images.txt', '1 x/1.jpg\n2 x/2.jpg\n3 x/3.jpg\n4 y/4.jpg\n'
     '5 y/5.jpg\n6 x/./1.jpg\n',
     r"images.txt:6: image 'x/./1.jpg' is already listed as id 1 \(line 1\)"
     r', with labels 1 and 3'),
    ('images.txt', '1 x/1.jpg\n2 x/1.jpg\n3 x/3.jpg\n4 y/4.jpg\n'
     '5 y/5.jpg\n6 z/6.jpg\n',
     r'images.txt:2: image .x/1.jpg. is already listed as id 1 \(line 1\), '
     r'with the same label: it would be one sample twice'),
    ('images.txt', b'1 x/1.jpg\n2 x/\xe92.jpg\n',
     r'images.txt:2: not UTF-8 text'),
    # Training would die later with a bare "embedded null byte".
    ('images.txt', b'1 x/1.jpg\n2 x/\x002.jpg\n',
     r'images.txt:2: a NUL byte \(\\0\) at column 5; text lines must not '
     'contain one'),
    ('images.txt', '1 x/1.jpg\n2 x/2.jpg\n3 x/3.jpg\n4 y/4.jpg\n'
     '5 y/5.jpg\n6 ../../elsewhere/6.jpg\n',
     r"images.txt:6: image name '\.\./\.\./elsewhere/6.jpg' leaves the image "
     r'folder; names are relative to it \(pass allow_outside_root=True'),
    ('images.txt', '1 x/1.jpg\n2 x/2.jpg\n3 x/3.jpg\n4 y/4.jpg\n'
     '5 y/5.jpg\n6 /srv/birds/6.jpg\n',
     r"images.txt:6: image name '/srv/birds/6.jpg' leaves"),
    ('images.txt', '1 x/1.jpg\n2 x/2.jpg\n3 x/3.jpg\n4 y/4.jpg\n'
     '5 y/5.jpg\n6 C:\\birds\\6.jpg\n',
     r"images.txt:6: image name 'C:\\\\birds\\\\6.jpg' leaves"),
    ('images.txt', '1 x/1.jpg\n2 x/2.jpg\n3 x/3.jpg\n4 y/4.jpg\n5 y/5.jpg\n',
     r'image_class_labels.txt:6: image id 6 is not in .*images.txt'),
    ('image_class_labels.txt', '1 1\n2 1\n3 1\n4 2\n6 3\n',
     r'image_class_labels.txt: no line for image id 5 \(listed in '
     r'.*images.txt:5\)'),
    ('train_test_split.txt', '1 1\n2 1\n3 0\n4 1\n5 0\n',
     r'train_test_split.txt: no line for image id 6'),
    ('image_class_labels.txt', '1 1\n2 1\n3 1\n4 2\n5 2\n6 first\n',
     r"image_class_labels.txt:6: the label must be a whole number, got "
     r"'first'"),
    ('image_class_labels.txt', '1 1\n2 1\n3 1\n4 2\n5 2\n6 4\n',
     r'image_class_labels.txt:6: label 4 is outside 1..3'),
    ('image_class_labels.txt', '1 0\n2 1\n3 1\n4 2\n5 2\n6 3\n',
     r'image_class_labels.txt:1: label 0 is outside 1..3'),
    ('image_class_labels.txt', '1 1\n2 1\n3 1\n4 2 2\n5 2\n6 3\n',
     r"image_class_labels.txt:4: the label must be a whole number, got "
     r"'2 2'"),
    ('image_class_labels.txt', b'1 1\n2 1\n3 1\n4 2\n5 \xff\n6 3\n',
     r"image_class_labels.txt:5: not UTF-8 text \(byte b'\\xff' at "
     r'column 3\)'),
    ('train_test_split.txt', '1 1\n2 1\n3 0\n4 1\n5 2\n6 1\n',
     r"train_test_split.txt:5: the split must be 1 \(train\) or 0 "
     r"\(test\), got '2'"),
    ('train_test_split.txt', '1 1\n2 1\n3 0\n3 1\n4 1\n5 0\n6 1\n',
     r'train_test_split.txt:4: duplicate image id 3 \(first on line 3\)'),
    ('classes.txt', '1 a\n3 b\n', r'classes.txt:2: expected class label 2'),
    ('classes.txt', '1 a\nb\n', r'classes.txt:2: expected "<label> '
     r'<class name>"'),
    ('classes.txt', b'1 a\n2 \xc3\n3 c\n', r'classes.txt:2: not UTF-8 text'),
    ('classes.txt', '\n\n', r'classes.txt: no classes'),
]


@pytest.mark.parametrize('file_name, content, message', BAD)
def test_bad_annotation_is_named_by_file_and_line(tmp_path, file_name,
                                                  content, message):
    root = write_layout(tmp_path, **{file_name: content})
    with pytest.raises(ValueError, match=message):
        build(root)


def test_names_outside_images_are_read_when_allowed(tmp_path):
    rows = ROWS[:-1] + [(6, '../shared/6.jpg', 3, 1)]
    root = write_layout(tmp_path, rows=rows)
    with pytest.raises(ValueError, match='images.txt:6: image name'):
        build(root)
    dataset = DATASETS.build(
        dict(type='CUBFolder', data_root=root, allow_outside_root=True))
    assert samples(dataset)[-1] == ('../shared/6.jpg', 2)


def test_mmpretrain_cub_accepts_what_checked_cub_refuses(tmp_path):
    """The attack the checks stop: a duplicate id puts an image in train
    twice with two labels and drops another; a split value of 2 puts an
    image in both splits."""
    root = write_layout(
        tmp_path,
        **{
            'images.txt': '1 x/1.jpg\n2 x/2.jpg\n3 x/3.jpg\n4 y/4.jpg\n'
                          '5 y/5.jpg\n6 z/6.jpg\n2 z/7.jpg\n',
            'train_test_split.txt': '1 1\n2 1\n3 0\n4 1\n5 2\n6 1\n'
        })
    meta = dict(classes=CLASSES)
    train = CUB(data_root=root, split='train', metainfo=meta)
    test = CUB(data_root=root, split='test', metainfo=meta)
    both = {info['img_path'] for info in train} & {
        info['img_path'] for info in test}
    assert both == {osp.join(root, 'images', 'y/5.jpg')}
    with pytest.raises(ValueError, match='duplicate image id 2'):
        CheckedCUB(data_root=root, metainfo=meta)


def test_class_count_must_match_the_declared_classes(tmp_path):
    root = write_layout(tmp_path)
    # mmpretrain's CUB names 200 species; this folder has 3 classes.
    with pytest.raises(ValueError,
                       match=r"classes.txt lists 3 classes but the data set "
                       r"declares 200 class names; use type='CUBFolder'"):
        CheckedCUB(data_root=root)
    assert len(CheckedCUB(data_root=root, metainfo=dict(classes=CLASSES))
               ) == 4


def test_missing_file_and_bad_split_are_named(tmp_path):
    root = write_layout(tmp_path)
    (tmp_path / 'train_test_split.txt').unlink()
    with pytest.raises(FileNotFoundError,
                       match='Annotation file not found: .*train_test_split'):
        build(root)
    with pytest.raises(ValueError, match=r"split must be one of \('train', "
                       r"'test'\), got 'val'"):
        build(root, split='val')


def test_registered_in_mmpretrain():
    assert DATASETS.get('CheckedCUB') is CheckedCUB
    assert issubclass(CUBFolder, CheckedCUB)
