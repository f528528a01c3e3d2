"""One picture per image: attention overlay, the M maps, crop and drop.

Drawn with matplotlib's Agg canvas on a private Figure (no pyplot state), so
it is safe inside a training process without a display.
"""
import math
from typing import Optional, Tuple

import numpy as np

# The figure is a grid of square cells: the top four panels take 2 x 2
# cells each, the attention maps one cell each.
GRID_COLUMNS = 8
TOP_ROWS = 2
DPI = 100


def attention_figure_shape(num_maps: int,
                           cell_size: int = 150) -> Tuple[int, int]:
    """(height, width) in pixels of :func:`draw_attention_figure`'s output."""
    map_rows = math.ceil(num_maps / GRID_COLUMNS)
    return (TOP_ROWS + map_rows) * cell_size, GRID_COLUMNS * cell_size


def _show(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(image, interpolation='nearest')
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()


def draw_attention_figure(image: np.ndarray,
                          attention_maps: np.ndarray,
                          crop: np.ndarray,
                          drop: np.ndarray,
                          title: Optional[str] = None,
                          cell_size: int = 150) -> np.ndarray:
    """Draw an image with its attention maps and attention-guided views.

    Top row: the image, the mean attention map over the image (with a
    colour bar), the attention crop and the attention drop. Below: every
    attention map on one shared colour scale, titled with its share of the
    total activation.

    Args:
        image: (H, W, 3) uint8 RGB image.
        attention_maps: (M, h, w) non-negative maps of the image.
        crop: (H, W, 3) uint8 RGB crop image.
        drop: (H, W, 3) uint8 RGB drop image.
        title: figure title.
        cell_size: side of a grid cell in pixels.

    Returns:
        (height, width, 3) uint8 RGB array, the shape given by
        :func:`attention_figure_shape`.
    """
    # Imported here, not at the top: ``import mmcal`` (every config and
    # tool) would pay matplotlib's import for a run that never draws.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    attention_maps = np.asarray(attention_maps, dtype=np.float32)
    if attention_maps.ndim != 3:
        raise ValueError('attention_maps must have shape (M, h, w), got '
                         f'{attention_maps.shape}')
    num_maps = attention_maps.shape[0]
    height, width = attention_figure_shape(num_maps, cell_size)
    figure = Figure(
        figsize=(width / DPI, height / DPI), dpi=DPI, layout='constrained')
    canvas = FigureCanvasAgg(figure)
    grid = figure.add_gridspec(height // cell_size, GRID_COLUMNS)
    image_height, image_width = image.shape[:2]

    _show(figure.add_subplot(grid[:TOP_ROWS, 0:2]), image, 'image')
    overlay_ax = figure.add_subplot(grid[:TOP_ROWS, 2:4])
    _show(overlay_ax, image, 'mean attention')
    heatmap = overlay_ax.imshow(
        attention_maps.mean(axis=0),
        cmap='jet',
        alpha=0.5,
        interpolation='bilinear',
        extent=(-0.5, image_width - 0.5, image_height - 0.5, -0.5))
    figure.colorbar(heatmap, ax=overlay_ax, shrink=0.8)
    _show(figure.add_subplot(grid[:TOP_ROWS, 4:6]), crop, 'attention crop')
    _show(figure.add_subplot(grid[:TOP_ROWS, 6:8]), drop, 'attention drop')

    total = attention_maps.sum()
    vmax = max(float(attention_maps.max()), 1e-12)
    for index, attention_map in enumerate(attention_maps):
        row, column = divmod(index, GRID_COLUMNS)
        ax = figure.add_subplot(grid[TOP_ROWS + row, column])
        ax.imshow(attention_map, cmap='jet', vmin=0, vmax=vmax,
                  interpolation='nearest')
        share = attention_map.sum() / total if total > 0 else 0.0
        ax.set_title(f'map {index} ({share:.0%})', fontsize=8)
        ax.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=11)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
