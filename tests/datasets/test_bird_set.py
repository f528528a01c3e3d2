import os
import os.path as osp
from collections import Counter

import pytest
import torch
from mmpretrain.registry import DATASETS

from mmcal.datasets import BirdSet, write_bird_set

CLASSES = ('001.Species_001', '002.Species_002', '003.Species_003')


@pytest.fixture(scope='module')
def bird_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bird_set'))
    truth = write_bird_set(root, num_classes=3, per_class=5, num_test=4,
                           size=32, seed=0)
    return root, truth


def _copy(root, tmp_path):
    import shutil
    target = tmp_path / 'copy'
    shutil.copytree(root, target)
    return target


def _names(dataset):
    return [osp.basename(info['img_path']) for info in dataset]


def test_fake_set_files(bird_root):
    root, truth = bird_root
    with open(osp.join(root, 'classes.txt')) as file:
        assert tuple(file.read().split()) == CLASSES
    with open(osp.join(root, 'training_labels.txt')) as file:
        lines = [line.split() for line in file]
    assert Counter(name for _, name in lines) == {name: 5 for name in CLASSES}
    assert len(truth) == 4 and set(truth) <= set(CLASSES)


def test_stratified_disjoint_deterministic_split(bird_root):
    root, _ = bird_root
    build = lambda split, **kw: DATASETS.build(  # noqa: E731
        dict(type='BirdSet', data_root=root, split=split, val_per_class=2,
             **kw))
    train, val, trainval = build('train'), build('val'), build('trainval')
    assert train.CLASSES == CLASSES
    assert len(train) == 9 and len(val) == 6 and len(trainval) == 15
    assert Counter(train.get_gt_labels().tolist()) == {0: 3, 1: 3, 2: 3}
    assert Counter(val.get_gt_labels().tolist()) == {0: 2, 1: 2, 2: 2}
    assert not set(_names(train)) & set(_names(val))
    assert set(_names(train)) | set(_names(val)) == set(_names(trainval))
    # Labels come from training_labels.txt: file k of the fake set belongs
    # to class (k - 1) // 5.
    for info in trainval:
        index = int(osp.basename(info['img_path'])[:4]) - 1
        assert info['gt_label'] == index // 5
    assert _names(build('val')) == _names(val)
    other_seeds = [_names(build('val', split_seed=s)) for s in range(1, 6)]
    assert any(names != _names(val) for names in other_seeds)


def test_test_split_in_order_without_labels(bird_root):
    root, _ = bird_root
    test = BirdSet(data_root=root, split='test')
    assert _names(test) == ['0001.jpg', '0002.jpg', '0003.jpg', '0004.jpg']
    assert all('gt_label' not in info for info in test)


def test_test_split_through_pipeline_and_predict(bird_root, tiny_model):
    from mmengine.dataset import pseudo_collate
    root, _ = bird_root
    test = BirdSet(
        data_root=root,
        split='test',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')])
    batch = pseudo_collate([test[0], test[1]])
    tiny_model.eval()
    with torch.no_grad():
        results = tiny_model.test_step(batch)
    assert len(results) == 2
    for result in results:
        assert 'gt_label' not in result
        assert result.pred_score.shape == (3, )
        assert 0 <= int(result.pred_label) < 3


@pytest.mark.parametrize('file_name, lines, message', [
    ('training_labels.txt', '0001.jpg 001.Species_001\n'
     '0002.jpg 009.Nope\n', r'training_labels.txt:2: unknown class name'),
    ('training_labels.txt', '0001.jpg 001.Species_001\n'
     '0001.jpg 002.Species_002\n',
     r'training_labels.txt:2: duplicate file .0001.jpg. \(first on line 1\)'),
    ('training_labels.txt', '0001.jpg 001.Species_001\n'
     'missing.jpg 001.Species_001\n',
     r'training_labels.txt:2: image file .*missing.jpg does not exist'),
    ('training_labels.txt', '0001.jpg\n', r'training_labels.txt:1: expected'),
    ('classes.txt', 'a\nb\na\n',
     r'classes.txt:3: duplicate class name .a. \(first on line 1\)'),
    ('testing_img_order.txt', '0001.jpg\n\n0001.jpg\n',
     r'testing_img_order.txt:3: duplicate file'),
    ('testing_img_order.txt', '0001.jpg\n0099.jpg\n',
     r'testing_img_order.txt:2: image file .*0099.jpg does not exist'),
    # One image under two names: two labels, in train and in val.
    ('training_labels.txt', '0001.jpg 001.Species_001\n'
     './0001.jpg 002.Species_002\n',
     r"training_labels.txt:2: duplicate file '\./0001.jpg' \(first on line "
     r"1\)"),
    ('training_labels.txt', '0001.jpg 001.Species_001\n'
     'x/../0001.jpg 002.Species_002\n', r'training_labels.txt:2: duplicate'),
    ('testing_img_order.txt', '0001.jpg\n.//0001.jpg\n',
     r"testing_img_order.txt:2: duplicate file '\.//0001.jpg'"),
    # A test image put into training, a file from outside the set.
    ('training_labels.txt', '0001.jpg 001.Species_001\n'
     '../testing_images/0001.jpg 002.Species_002\n',
     r"training_labels.txt:2: image name '\.\./testing_images/0001.jpg' "
     r'leaves the image folder; names are relative to it \(pass '
     r'allow_outside_root=True to the data set to read such names\)'),
    ('testing_img_order.txt', '/etc/hostname\n',
     r"testing_img_order.txt:1: image name '/etc/hostname' leaves"),
    ('training_labels.txt', '0001.jpg 001.Species_001\n'
     '00\x0002.jpg 001.Species_001\n',
     r'training_labels.txt:2: a NUL byte \(\\0\) at column 3; text lines '
     'must not contain one'),
])
def test_bad_lines_name_file_and_line(bird_root, tmp_path, file_name, lines,
                                      message):
    root = _copy(bird_root[0], tmp_path)
    (root / file_name).write_text(lines)
    split = 'test' if file_name.startswith('testing') else 'trainval'
    with pytest.raises(ValueError, match=message):
        BirdSet(data_root=str(root), split=split)


def test_bad_arguments(bird_root):
    root, _ = bird_root
    with pytest.raises(ValueError, match='split must be one of'):
        BirdSet(data_root=root, split='validation')
    with pytest.raises(ValueError, match='has 5 labelled images, too few'):
        BirdSet(data_root=root, split='train', val_per_class=5)
    with pytest.raises(FileNotFoundError, match='classes.txt'):
        BirdSet(data_root=osp.join(root, 'nowhere'))


@pytest.mark.parametrize('file_name', ['classes.txt', 'training_labels.txt'])
def test_non_utf8_byte_names_file_and_line(bird_root, tmp_path, file_name):
    root = _copy(bird_root[0], tmp_path)
    lines = (root / file_name).read_bytes().splitlines(keepends=True)
    # A Latin-1 'e' with acute accent, as an editor in another encoding
    # would write it, in the second line.
    lines[1] = lines[1].replace(b'0', b'\xe9', 1)
    (root / file_name).write_bytes(b''.join(lines))
    with pytest.raises(ValueError,
                       match=rf"{file_name}:2: not UTF-8 text \(byte "
                       r"b'\\xe9' at column \d+\)"):
        BirdSet(data_root=str(root), split='trainval')


def test_byte_order_mark_crlf_and_blank_lines_are_tolerated(
        bird_root, tmp_path):
    root = _copy(bird_root[0], tmp_path)
    for file_name in ('classes.txt', 'training_labels.txt',
                      'testing_img_order.txt'):
        text = (root / file_name).read_text()
        (root / file_name).write_bytes(
            b'\xef\xbb\xbf' + text.replace('\n', '\r\n\r\n').encode())
    expected = BirdSet(data_root=bird_root[0], split='trainval')
    for split in ('trainval', 'test'):
        dataset = BirdSet(data_root=str(root), split=split)
        assert dataset.CLASSES == CLASSES
        assert len(dataset) == (15 if split == 'trainval' else 4)
    trainval = BirdSet(data_root=str(root), split='trainval')
    assert _names(trainval) == _names(expected)
    assert trainval.get_gt_labels().tolist() == (
        expected.get_gt_labels().tolist())


def test_names_outside_the_image_folder_are_read_when_allowed(
        bird_root, tmp_path):
    root = _copy(bird_root[0], tmp_path)
    test_image = root / 'testing_images' / '0001.jpg'
    lines = (root / 'training_labels.txt').read_text().splitlines()
    lines[0] = f'{test_image} {lines[0].split()[1]}'
    lines[1] = f'../testing_images/0002.jpg {lines[1].split()[1]}'
    (root / 'training_labels.txt').write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match='training_labels.txt:1: image name'):
        BirdSet(data_root=str(root), split='trainval')
    dataset = BirdSet(data_root=str(root), split='trainval',
                      allow_outside_root=True)
    assert [osp.relpath(info['img_path'], root) for info in dataset][:2] == [
        'testing_images/0001.jpg', 'testing_images/0002.jpg']


def test_special_file_in_the_image_folder_is_named(bird_root, tmp_path):
    root = _copy(bird_root[0], tmp_path)
    os.remove(root / 'testing_images' / '0001.jpg')
    os.mkfifo(root / 'testing_images' / '0001.jpg')
    with pytest.raises(ValueError, match=r'testing_img_order.txt:1: image '
                       r'file .*0001.jpg is not a regular file'):
        BirdSet(data_root=str(root), split='test')
