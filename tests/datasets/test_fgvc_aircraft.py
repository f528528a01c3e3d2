"""CheckedFGVCAircraft: the fgvc-aircraft-2013b layout at variant level,
every annotation line checked, errors naming file:line."""
import os
import os.path as osp

import pytest
from mmpretrain.registry import DATASETS

from mmcal.datasets import CheckedFGVCAircraft

# Names as the real set has them: spaces and slashes.
VARIANTS = ('F/A-18', 'Cessna 172', 'BAE 146-200')
TRAIN = [('0034309', 'F/A-18'), ('0056978', 'Cessna 172'),
         ('1025794', 'BAE 146-200'), ('0062765', 'F/A-18')]
TEST = [('0068945', 'Cessna 172'), ('0104781', 'BAE 146-200')]


def write_layout(root, variants=VARIANTS, **replace):
    """``data/variants.txt``, the train and test lists and an (empty) image
    per listed id; ``replace`` maps a file name under ``data/`` to the text
    or bytes to write instead."""
    data = root / 'data'
    os.makedirs(data / 'images', exist_ok=True)
    files = {
        'variants.txt': ''.join(f'{name}\n' for name in variants),
        'images_variant_train.txt': ''.join(f'{i} {v}\n' for i, v in TRAIN),
        'images_variant_test.txt': ''.join(f'{i} {v}\n' for i, v in TEST),
    }
    for image_id, _ in TRAIN + TEST:
        (data / 'images' / f'{image_id}.jpg').write_bytes(b'')
    files.update(replace)
    for name, content in files.items():
        if isinstance(content, str):
            content = content.encode()
        (data / name).write_bytes(content)
    return str(root)


def build(root, split='train', classes=VARIANTS, **kwargs):
    return DATASETS.build(
        dict(type='CheckedFGVCAircraft', data_root=root, split=split,
             metainfo=dict(classes=classes), **kwargs))


def samples(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_reads_variants_with_spaces_and_slashes(tmp_path):
    root = write_layout(tmp_path)
    train = build(root)
    assert isinstance(train, CheckedFGVCAircraft)
    assert train.CLASSES == VARIANTS
    assert [osp.basename(s['img_path']) for s in samples(train)] == [
        f'{i}.jpg' for i, _ in TRAIN]
    assert [s['gt_label'] for s in samples(train)] == [0, 1, 2, 0]
    test = build(root, split='test')
    assert test.test_mode
    assert [s['gt_label'] for s in samples(test)] == [1, 2]


def test_mmpretrain_variants_by_default(tmp_path):
    """Without metainfo the 100 variants of mmpretrain's FGVCAircraft are
    declared: a three-variant variants.txt is refused by name."""
    root = write_layout(tmp_path)
    with pytest.raises(ValueError, match='variants.txt lists 3 variants but '
                       'the data set declares 100'):
        DATASETS.build(dict(type='CheckedFGVCAircraft', data_root=root,
                            split='train'))


@pytest.mark.parametrize('text, line, reason', [
    ('0034309 F/A-18\n0056978 F-18\n', 2,
     "variant 'F-18' is not in variants.txt"),
    ('0034309 F/A-18\n\n0034309 Cessna 172\n', 3,
     "image id '0034309' is already listed on line 1"),
    ('0034309 F/A-18\n0056978\n', 2, 'expected "<image id> <variant'),
    ('0034309 F/A-18\n9999999 Cessna 172\n', 2,
     'images/9999999.jpg does not exist'),
    ('../../secret Cessna 172\n', 1, 'leaves the image folder'),
    (b'0034309 F/A-18\n0056978 Cessna\xff 172\n', 2, 'not UTF-8'),
])
def test_refuses_bad_list_lines_by_file_line(tmp_path, text, line, reason):
    root = write_layout(tmp_path, **{'images_variant_train.txt': text})
    with pytest.raises(ValueError) as error:
        build(root)
    message = str(error.value)
    assert f'images_variant_train.txt:{line}: ' in message
    assert reason in message


def test_refuses_bad_variants_file(tmp_path):
    root = write_layout(tmp_path, **{
        'variants.txt': 'F/A-18\nCessna 172\nF/A-18\n'})
    with pytest.raises(ValueError, match=r"variants.txt:3: variant 'F/A-18' "
                       r'is listed twice \(first on line 1\)'):
        build(root)
    root = write_layout(tmp_path, **{
        'variants.txt': 'F/A-18\nCessna 172\nBAE 146 200\n'})
    with pytest.raises(ValueError, match="variants.txt:3: variant 'BAE 146 "
                       "200' is not among the 3 class names"):
        build(root)


def test_outside_names_allowed_on_request(tmp_path):
    root = write_layout(tmp_path, **{
        'images_variant_train.txt': '../images/0034309 F/A-18\n'})
    dataset = build(root, allow_outside_root=True)
    assert samples(dataset)[0]['gt_label'] == 0
