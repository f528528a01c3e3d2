"""Writing the synthetic birds to disk, in the CUB-200-2011 layout or in the
200-bird project's layout.

Boxes are held as ``(x1, y1, x2, y2)`` everywhere in mmcal; CUB's files store
``(x, y, w, h)``, converted here on the way out.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torchvision.ops import box_convert

from .drawing import PART_NAMES, class_names, draw_bird_image, make_species

# The set the synthetic configs and the demo expect: 10 classes at 96 px,
# 56 train and 24 test images per class.
DEMO_SET = dict(num_classes=10, per_class=80, size=96, seed=0)


def _cub_box(box: np.ndarray) -> List[float]:
    """(x1, y1, x2, y2) -> CUB's (x, y, w, h), 1 decimal."""
    xywh = box_convert(torch.as_tensor(box), 'xyxy', 'xywh')
    return [round(float(value), 1) for value in xywh]


def _write_lines(path: str, lines: Sequence[str]) -> None:
    with open(path, 'w') as file:
        file.write(''.join(line + '\n' for line in lines))


def _draw_all(num_classes, per_class, size, seed):
    """Yield ``(label, index, image, bird_box, part_boxes)``; one random
    stream per image so that images do not depend on each other."""
    species = make_species(num_classes, seed)
    for label, kind in enumerate(species):
        for index in range(per_class):
            rng = np.random.default_rng([seed, label, index])
            yield (label, index, *draw_bird_image(kind, rng, size))


def write_synthetic_birds(out_dir: str,
                          num_classes: int = 10,
                          per_class: int = 30,
                          size: int = 96,
                          seed: int = 0,
                          test_fraction: float = 0.3) -> Dict[str, int]:
    """Write the set in the CUB-200-2011 layout.

    Files: ``images/<NNN.Name>/*.jpg``, ``images.txt``,
    ``image_class_labels.txt``, ``train_test_split.txt``, ``classes.txt``,
    ``bounding_boxes.txt``, ``parts/parts.txt`` and ``parts/part_locs.txt``
    (part centres, as CUB), and ``parts/part_boxes.txt`` (``<image id>
    <part id> <x> <y> <w> <h>``, the boxes of the parts). Ids start at 1.
    The last ``round(per_class * test_fraction)`` images of every class are
    the test split.

    Returns:
        ``dict(train=..., test=...)`` image counts.
    """
    if per_class < 2 or size < 32 or not 0 < test_fraction < 1:
        raise ValueError('Need per_class >= 2, size >= 32 and 0 < '
                         f'test_fraction < 1, got {per_class}, {size}, '
                         f'{test_fraction}')
    num_test = min(per_class - 1, max(1, round(per_class * test_fraction)))
    names = class_names(num_classes)
    os.makedirs(osp.join(out_dir, 'parts'), exist_ok=True)
    images, labels, splits, bird_boxes, part_locs, part_boxes = ([] for _ in
                                                                 range(6))
    counts = dict(train=0, test=0)
    for image_id, (label, index, image, bird_box, boxes) in enumerate(
            _draw_all(num_classes, per_class, size, seed), start=1):
        folder = names[label]
        relative = f'{folder}/{folder[4:]}_{index + 1:04d}.jpg'
        os.makedirs(osp.join(out_dir, 'images', folder), exist_ok=True)
        image.save(osp.join(out_dir, 'images', relative), quality=92)
        is_train = index < per_class - num_test
        counts['train' if is_train else 'test'] += 1
        images.append(f'{image_id} {relative}')
        labels.append(f'{image_id} {label + 1}')
        splits.append(f'{image_id} {int(is_train)}')
        bird_boxes.append(f'{image_id} ' +
                          ' '.join(map(str, _cub_box(bird_box))))
        for part_id, part in enumerate(PART_NAMES, start=1):
            x, y, w, h = _cub_box(boxes[part])
            part_locs.append(f'{image_id} {part_id} {round(x + w / 2, 1)} '
                             f'{round(y + h / 2, 1)} 1')
            part_boxes.append(f'{image_id} {part_id} {x} {y} {w} {h}')
    _write_lines(osp.join(out_dir, 'images.txt'), images)
    _write_lines(osp.join(out_dir, 'image_class_labels.txt'), labels)
    _write_lines(osp.join(out_dir, 'train_test_split.txt'), splits)
    _write_lines(osp.join(out_dir, 'bounding_boxes.txt'), bird_boxes)
    _write_lines(osp.join(out_dir, 'classes.txt'),
                 [f'{i} {name}' for i, name in enumerate(names, start=1)])
    _write_lines(osp.join(out_dir, 'parts', 'parts.txt'),
                 [f'{i} {name}' for i, name in enumerate(PART_NAMES, 1)])
    _write_lines(osp.join(out_dir, 'parts', 'part_locs.txt'), part_locs)
    _write_lines(osp.join(out_dir, 'parts', 'part_boxes.txt'), part_boxes)
    return counts


def write_bird_set(out_dir: str,
                   num_classes: int = 4,
                   per_class: int = 5,
                   num_test: int = 6,
                   size: int = 48,
                   seed: int = 0,
                   train_folder: str = 'training_images',
                   test_folder: str = 'testing_images') -> List[str]:
    """Write a small set in the 200-bird project's layout (see
    :class:`mmcal.datasets.BirdSet`): ``classes.txt``,
    ``training_labels.txt``, ``testing_img_order.txt`` and the two image
    folders. Test images are of random species.

    Returns:
        The true class name of each test image, in
        ``testing_img_order.txt`` order.
    """
    names = class_names(num_classes)
    for folder in (train_folder, test_folder):
        os.makedirs(osp.join(out_dir, folder), exist_ok=True)
    train_lines = []
    for label, index, image, _, _ in _draw_all(num_classes, per_class, size,
                                               seed):
        file_name = f'{label * per_class + index + 1:04d}.jpg'
        image.save(osp.join(out_dir, train_folder, file_name), quality=92)
        train_lines.append(f'{file_name} {names[label]}')
    species = make_species(num_classes, seed)
    rng = np.random.default_rng([seed, num_classes, per_class, num_test])
    test_truth, test_lines = [], []
    for index in range(num_test):
        label = int(rng.integers(num_classes))
        image = draw_bird_image(species[label], rng, size)[0]
        file_name = f'{index + 1:04d}.jpg'
        image.save(osp.join(out_dir, test_folder, file_name), quality=92)
        test_lines.append(file_name)
        test_truth.append(names[label])
    _write_lines(osp.join(out_dir, 'classes.txt'), names)
    _write_lines(osp.join(out_dir, 'training_labels.txt'), train_lines)
    _write_lines(osp.join(out_dir, 'testing_img_order.txt'), test_lines)
    return test_truth


def ensure_synthetic_birds(data_root: str,
                           **spec) -> Optional[Dict[str, int]]:
    """Write the CUB-layout set of ``spec`` (:func:`write_synthetic_birds`'s
    arguments) to ``data_root`` unless a set is there already.

    Returns:
        The image counts when the set was written, None when ``data_root``
        already held one (its ``images.txt``).
    """
    if osp.isfile(osp.join(data_root, 'images.txt')):
        return None
    return write_synthetic_birds(data_root, **spec)
