"""A synthetic fine-grained bird set, drawn with numpy and PIL.

Every species shares one body plan (body, head, wing, tail, legs, eye) whose
colours are drawn per image from one shared palette, so the body says
nothing about the species. Species differ only in five small parts: the
beak (colour and shape), the eye ring, the crown, the wing bar and the tail
tip. Birds are drawn at a random position, scale, rotation and flip over a
cluttered background that reuses the part colours, so a classifier has to
look at the right small regions.

The bird is drawn in a canonical frame (facing right, body length 1, origin
at the body centre) and mapped to the image by one affine transform; part
boxes are the transformed part polygons' bounding boxes.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

# Vivid colours of the discriminative parts.
PART_COLOURS = {
    'red': (210, 30, 30),
    'yellow': (240, 210, 20),
    'blue': (30, 80, 220),
    'white': (245, 245, 245),
    'black': (15, 15, 15),
    'orange': (245, 130, 20),
}
# Earthy colours of the shared body plan, drawn per image.
BODY_COLOURS = [(120, 90, 60), (150, 130, 100), (100, 100, 95),
                (130, 120, 70), (90, 70, 55), (170, 160, 140)]

# Options of each discriminative part; ``None`` means "not marked" (drawn
# in the head/wing/tail colour of the image).
PART_OPTIONS = {
    'beak': [(colour, shape) for colour in ('yellow', 'black', 'orange')
             for shape in ('short', 'long', 'hooked')],
    'eye_ring': [None, 'white', 'yellow', 'red'],
    'crown': [None, 'red', 'blue', 'yellow', 'black'],
    'wing_bar': [None, ('white', 1), ('white', 2), ('yellow', 1)],
    'tail_tip': [None, 'white', 'orange', 'blue'],
}
PART_NAMES = tuple(PART_OPTIONS)

# Canonical bird (facing right, y down), in body lengths.
BODY = ((0.0, 0.0), (0.32, 0.2))  # ellipse centre, radii
HEAD = ((0.33, -0.17), (0.13, 0.13))
WING = ((-0.04, -0.02), (0.21, 0.1))
EYE = ((0.37, -0.2), (0.028, 0.028))
EYE_RING = ((0.37, -0.2), (0.055, 0.055))
CROWN = ((0.32, -0.285), (0.085, 0.04))
TAIL = ((-0.26, -0.06), (-0.58, -0.14), (-0.6, 0.06), (-0.26, 0.06))
TAIL_TIP_FRACTION = 0.3  # outer share of the tail's length
BEAK_BASE = ((0.43, -0.22), (0.45, -0.13))
BEAK_SHAPES = {
    'short': ((0.53, -0.17), ),
    'long': ((0.66, -0.17), ),
    'hooked': ((0.57, -0.2), (0.6, -0.12), (0.55, -0.14)),
}
LEGS = (((-0.03, 0.19), (-0.06, 0.36)), ((0.07, 0.19), (0.08, 0.36)))
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Species:
    """One option index per part, in ``PART_NAMES`` order."""
    parts: Tuple[int, ...]

    def option(self, part: str):
        return PART_OPTIONS[part][self.parts[PART_NAMES.index(part)]]


def make_species(num_classes: int, seed: int) -> List[Species]:
    """``num_classes`` distinct species, any two differing in at least two
    parts while that is possible (then in at least one).

    Raises:
        ValueError: more classes than part combinations.
    """
    sizes = [len(options) for options in PART_OPTIONS.values()]
    if not 1 <= num_classes <= math.prod(sizes):
        raise ValueError(f'num_classes must be in [1, {math.prod(sizes)}], '
                         f'got {num_classes}')
    rng = np.random.default_rng(seed)
    species: List[Tuple[int, ...]] = []
    for min_distance in (2, 1):
        for _ in range(50 * num_classes):
            if len(species) == num_classes:
                return [Species(parts) for parts in species]
            candidate = tuple(int(rng.integers(size)) for size in sizes)
            if all(
                    sum(a != b for a, b in zip(candidate, other)) >=
                    min_distance for other in species):
                species.append(candidate)
    # Random draws missed the last few: take the remaining combinations.
    for index in np.ndindex(*sizes):
        if len(species) == num_classes:
            break
        if index not in species:
            species.append(tuple(int(i) for i in index))
    return [Species(parts) for parts in species]


def class_names(num_classes: int) -> List[str]:
    """CUB-style folder names ``001.Species_001``, ..."""
    return [f'{i:03d}.Species_{i:03d}' for i in range(1, num_classes + 1)]


def _ellipse(centre, radii, steps=24) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, steps, endpoint=False)
    return np.stack([centre[0] + radii[0] * np.cos(angles),
                     centre[1] + radii[1] * np.sin(angles)], axis=1)


def _band(centre, radii, low, high, steps=24) -> np.ndarray:
    """Strip of an ellipse between two x offsets (fractions of its width)."""
    top = np.linspace(low, high, steps)
    x = centre[0] + radii[0] * top
    half = radii[1] * np.sqrt(np.clip(1 - top**2, 0, 1))
    return np.concatenate([
        np.stack([x, centre[1] - half], 1),
        np.stack([x[::-1], centre[1] + half[::-1]], 1)
    ])


def _tail_tip() -> np.ndarray:
    (a, b, c, d) = [np.array(p) for p in TAIL]
    t = 1 - TAIL_TIP_FRACTION
    return np.stack([a + t * (b - a), b, c, d + t * (c - d)])


def _beak(shape: str) -> np.ndarray:
    return np.array([BEAK_BASE[0], *BEAK_SHAPES[shape], BEAK_BASE[1]])


def _draw_background(rng: np.random.Generator, size: int) -> Image.Image:
    """A colour gradient with random blobs, twigs and part-coloured dots."""
    start, end = rng.integers(40, 220, size=(2, 3))
    ramp = np.linspace(0, 1, size)[:, None, None]
    pixels = start + (end - start) * ramp * np.ones((1, size, 1))
    if rng.random() < 0.5:
        pixels = pixels.transpose(1, 0, 2)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    palette = list(PART_COLOURS.values()) + BODY_COLOURS
    for _ in range(int(rng.integers(6, 12))):
        colour = palette[int(rng.integers(len(palette)))]
        x, y = rng.uniform(0, size, 2)
        kind = int(rng.integers(3))
        if kind == 0:  # leaf-like blob
            rx, ry = rng.uniform(0.05, 0.15, 2) * size
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=colour)
        elif kind == 1:  # twig
            angle = rng.uniform(0, np.pi)
            length = rng.uniform(0.3, 0.8) * size
            draw.line([x, y, x + length * np.cos(angle),
                       y + length * np.sin(angle)], fill=colour,
                      width=max(1, int(size * rng.uniform(0.01, 0.03))))
        else:  # small dot, as small as a part
            r = rng.uniform(0.01, 0.03) * size
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return image


def _bird_transform(rng: np.random.Generator,
                    size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Random pose: a (2, 2) matrix and a (2,) offset mapping canonical
    points to pixels, the whole bird kept inside the image."""
    length = rng.uniform(0.55, 0.85) * size
    angle = np.deg2rad(rng.uniform(-30, 30))
    flip = -1.0 if rng.random() < 0.5 else 1.0
    rotation = np.array([[np.cos(angle), -np.sin(angle)],
                         [np.sin(angle), np.cos(angle)]])
    matrix = length * rotation @ np.diag([flip, 1.0])
    outline = np.concatenate([
        _ellipse(*BODY), _ellipse(*HEAD), np.array(TAIL), _beak('long'),
        _beak('hooked'), _ellipse(*CROWN), np.array(LEGS).reshape(-1, 2)
    ]) @ matrix.T
    low, high = outline.min(0), outline.max(0)
    margin = 0.02 * size
    offset = np.array([
        rng.uniform(margin - low[i], max(margin - low[i],
                                         size - margin - high[i]))
        for i in range(2)
    ])
    return matrix, offset


def _part_polygons(species: Species, colours: Dict[str, tuple],
                   ) -> List[Tuple[str, np.ndarray, tuple]]:
    """The bird as (name, canonical polygon, colour) in drawing order; the
    names of discriminative parts are those of ``PART_NAMES``."""
    body, wing = colours['body'], colours['wing']
    polygons = [('tail', np.array(TAIL), body)]
    tip = species.option('tail_tip')
    polygons.append(('tail_tip', _tail_tip(),
                     PART_COLOURS[tip] if tip else body))
    polygons += [('body', _ellipse(*BODY), body),
                 ('head', _ellipse(*HEAD), colours['head'])]
    crown = species.option('crown')
    polygons.append(('crown', _ellipse(*CROWN),
                     PART_COLOURS[crown] if crown else colours['head']))
    polygons.append(('wing', _ellipse(*WING), wing))
    bar = species.option('wing_bar')
    bar_colour = PART_COLOURS[bar[0]] if bar else wing
    bands = (((0.1, 0.3), ) if not bar or bar[1] == 1 else
             ((-0.1, 0.1), (0.3, 0.5)))
    for low, high in bands:
        polygons.append(('wing_bar', _band(*WING, low, high), bar_colour))
    ring = species.option('eye_ring')
    polygons.append(('eye_ring', _ellipse(*EYE_RING),
                     PART_COLOURS[ring] if ring else colours['head']))
    polygons.append(('eye', _ellipse(*EYE), PART_COLOURS['black']))
    beak_colour, beak_shape = species.option('beak')
    polygons.append(('beak', _beak(beak_shape), PART_COLOURS[beak_colour]))
    return polygons


def draw_bird_image(species: Species, rng: np.random.Generator, size: int
                    ) -> Tuple[Image.Image, np.ndarray, Dict[str, np.ndarray]]:
    """Draw one image of ``species``.

    The random draws do not depend on the species: the same ``rng`` state
    gives the same background and pose for any species.

    Returns:
        ``(image, bird_box, part_boxes)``: an RGB ``size`` x ``size``
        image, the bird's box and ``{part: box}`` for every name in
        ``PART_NAMES``; boxes are (4,) float arrays ``(x1, y1, x2, y2)`` in
        pixels, clipped to the image.
    """
    background = _draw_background(rng, size)
    matrix, offset = _bird_transform(rng, size)
    picks = rng.integers(len(BODY_COLOURS), size=3)
    colours = dict(zip(('body', 'head', 'wing'),
                       (BODY_COLOURS[int(i)] for i in picks)))
    leg_width = max(1, int(round(0.015 * size * SUPERSAMPLE)))

    scale = SUPERSAMPLE
    canvas = background.resize((size * scale, size * scale), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for start, end in LEGS:
        points = (np.array([start, end]) @ matrix.T + offset) * scale
        draw.line(points.ravel().tolist(), fill=(60, 50, 40), width=leg_width)
    boxes: Dict[str, np.ndarray] = {}
    everything = []
    for name, polygon, colour in _part_polygons(species, colours):
        points = polygon @ matrix.T + offset
        everything.append(points)
        draw.polygon([tuple(p) for p in points * scale], fill=colour)
        if name in PART_NAMES:
            low, high = points.min(0), points.max(0)
            if name in boxes:
                low = np.minimum(low, boxes[name][:2])
                high = np.maximum(high, boxes[name][2:])
            boxes[name] = np.concatenate([low, high])
    image = canvas.reduce(scale)
    part_boxes = {name: boxes[name].clip(0, size) for name in PART_NAMES}
    allpoints = np.concatenate(everything)
    bird_box = np.concatenate([allpoints.min(0), allpoints.max(0)]).clip(
        0, size)
    return image, bird_box, part_boxes
