import os
import os.path as osp
from typing import Optional

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS
from PIL import Image

from mmcal.visualization import (attention_statistics, attention_views,
                                 draw_view_figure)


@HOOKS.register_module()
class AttentionVisualizationHook(Hook):
    """Draw and measure the attention of a few validation images.

    After each validation the attention maps of ``num_images`` fixed
    validation images (evenly spaced through the validation set) are
    summarised as scalars, logged with the validation metrics (so they land
    in the json log and every visualiser backend):

    - ``attention/entropy``: mean normalised entropy of the maps (1 flat,
      0 one pixel); it falls as the maps focus on parts;
    - ``attention/peak_ratio``: mean of each map's maximum over its mean;
    - ``attention/dead_fraction``: share of maps that are zero everywhere.

    At the validations that fall on a multiple of ``interval`` epochs
    (iterations for iteration-based training) it also draws each image
    with its mean attention, its M maps and the crop and drop a training
    step would make, into
    ``work_dir/<out_dir>/epoch_<N>/`` and to the runner's visualiser (local
    files, TensorBoard, ...) as ``attention_<image>``.

    A failure here is logged as a warning and never stops training, unless
    ``raise_errors`` is set (for debugging the hook; the tests set it).

    Args:
        interval: draw every ``interval`` epochs (or iterations).
        num_images: how many validation images to use.
        out_dir: folder under the work dir for the pictures.
        seed: seed of the crop / drop map draw, fixed so pictures compare
            across epochs.
        raise_errors: re-raise a failure instead of logging it.
    """

    # Before the LoggerHook (BELOW_NORMAL) writes the validation record.
    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 1,
                 num_images: int = 4,
                 out_dir: str = 'attention',
                 seed: int = 0,
                 raise_errors: bool = False):
        if interval < 1 or num_images < 1:
            raise ValueError('AttentionVisualizationHook needs interval >= 1 '
                             f'and num_images >= 1, got {interval} and '
                             f'{num_images}')
        self.interval = interval
        self.num_images = num_images
        self.out_dir = out_dir
        self.seed = seed
        self.raise_errors = raise_errors
        self._batch: Optional[dict] = None

    def after_val_epoch(self, runner, metrics=None) -> None:
        try:
            self._visualize(runner)
        except Exception as error:  # a picture is never worth a run
            if self.raise_errors:
                raise
            runner.logger.warning(
                f'AttentionVisualizationHook skipped: {error!r}')

    def _fixed_batch(self, runner) -> dict:
        """The chosen validation samples, collated (loaded once)."""
        if self._batch is None:
            dataset = runner.val_dataloader.dataset
            count = min(self.num_images, len(dataset))
            indices = np.linspace(0, len(dataset) - 1, count).round()
            self._batch = pseudo_collate(
                [dataset[int(index)] for index in indices])
        return self._batch

    def _visualize(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
        unit, step = ('epoch', runner.epoch) if by_epoch else ('iter',
                                                               runner.iter)
        draw = step % self.interval == 0 and is_main_process()
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                data = model.data_preprocessor(self._fixed_batch(runner),
                                               False)
                views = attention_views(model, data['inputs'], self.seed)
        finally:
            model.train(was_training)
        for key, value in attention_statistics(
                torch.from_numpy(views['attention_maps'])).items():
            runner.message_hub.update_scalar(f'val/attention/{key}', value)
        if not draw:
            return
        folder = osp.join(runner.work_dir, self.out_dir, f'{unit}_{step}')
        os.makedirs(folder, exist_ok=True)
        for index, sample in enumerate(data['data_samples']):
            stem = osp.splitext(osp.basename(sample.get('img_path', '')))[0]
            name = f'{index:02d}_{stem}' if stem else f'{index:02d}'
            picture = draw_view_figure(views, index, f'{name}, {unit} {step}')
            Image.fromarray(picture).save(osp.join(folder, f'{name}.png'))
            runner.visualizer.add_image(
                f'attention_{name}', picture, step=step)
