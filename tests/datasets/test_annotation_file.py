"""The text reader every list goes through: a NUL byte is named by
file:line, whichever list it is in."""
import pytest

from mmcal.apis import collect_images
from mmcal.datasets.annotation_file import read_annotation_lines


def test_nul_byte_is_named_by_file_line_and_column(tmp_path):
    path = tmp_path / 'names.txt'
    path.write_bytes(b'a.jpg\r\n\r\nb\x00.jpg\n')
    with pytest.raises(ValueError) as e:
        read_annotation_lines(str(path))
    assert str(e.value) == (f'{path}:3: a NUL byte (\\0) at column 2; text '
                            'lines must not contain one')


def test_prediction_list_with_a_nul_byte_is_named(tmp_path):
    """tools/predict.py reads its list with the same reader: the name
    would otherwise reach the OS and fail as "embedded null byte"."""
    listing = tmp_path / 'testing_img_order.txt'
    listing.write_bytes(b'0001.jpg\n0002.jpg\x00\n')
    with pytest.raises(ValueError, match=r'testing_img_order.txt:2: a NUL '
                       r'byte \(\\0\) at column 9'):
        collect_images(str(listing))
