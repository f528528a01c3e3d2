import numpy as np
import pytest

from mmcal.datasets.synthetic import (PART_NAMES, PART_OPTIONS, Species,
                                      draw_bird_image, make_species)


def _render(species, seed, size=64):
    image, _, boxes = draw_bird_image(species, np.random.default_rng(seed),
                                      size)
    return np.asarray(image, dtype=np.int16), boxes


def _box_mask(boxes, size, margin=1):
    mask = np.zeros((size, size), dtype=bool)
    for x1, y1, x2, y2 in boxes:
        x1, y1 = max(0, int(x1) - margin), max(0, int(y1) - margin)
        x2, y2 = int(np.ceil(x2)) + margin, int(np.ceil(y2)) + margin
        mask[y1:y2, x1:x2] = True
    return mask


@pytest.mark.parametrize('part', PART_NAMES)
def test_species_differ_only_inside_the_changed_part(part):
    """Two species differing in one part, drawn from the same random state:
    the pixels differ inside that part's box and nowhere else."""
    index = PART_NAMES.index(part)
    base = (1, 1, 1, 1, 1)
    other = base[:index] + (2, ) + base[index + 1:]
    assert PART_OPTIONS[part][1] != PART_OPTIONS[part][2]
    for seed in range(3):
        image_a, boxes_a = _render(Species(base), seed)
        image_b, boxes_b = _render(Species(other), seed)
        changed = np.abs(image_a - image_b).max(-1) > 0
        inside = _box_mask([boxes_a[part], boxes_b[part]], 64)
        assert changed[inside].sum() >= 2
        assert not changed[~inside].any()
        for name in PART_NAMES:
            if name != part:
                assert np.array_equal(boxes_a[name], boxes_b[name])


def test_make_species_distinct_and_separated():
    species = make_species(20, seed=0)
    assert len(set(species)) == 20
    for i, a in enumerate(species):
        for b in species[i + 1:]:
            assert sum(x != y for x, y in zip(a.parts, b.parts)) >= 2
    assert make_species(20, seed=0) == species
    with pytest.raises(ValueError, match='num_classes'):
        make_species(0, seed=0)
