"""draw_attention_figure: size, content, bad input."""
import numpy as np
import pytest

from mmcal.visualization import attention_figure_shape, draw_attention_figure


@pytest.mark.parametrize('num_maps, expected', [(4, (450, 1200)),
                                                (8, (450, 1200)),
                                                (9, (600, 1200)),
                                                (32, (900, 1200))])
def test_figure_shape(num_maps, expected):
    # Two rows of cells for the top panels, one per 8 maps, 150 px cells.
    assert attention_figure_shape(num_maps) == expected


def test_figure_has_the_announced_shape_and_shows_the_panels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    black = np.zeros_like(image)
    maps = rng.random((9, 4, 4)).astype(np.float32)
    picture = draw_attention_figure(image, maps, black, black, title='bird')
    assert picture.shape == (*attention_figure_shape(9), 3)
    assert picture.dtype == np.uint8
    # The black crop and drop panels sit in the top right half; the
    # background is white.
    top_right = picture[:300, 600:]
    assert (top_right == 0).all(axis=-1).mean() > 0.3
    assert (picture == 255).all(axis=-1).mean() > 0.2


def test_maps_must_be_three_dimensional():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r'\(M, h, w\)'):
        draw_attention_figure(image, np.zeros((1, 4, 2, 2)), image, image)
