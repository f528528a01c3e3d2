"""Compare CAL, WS-DAN and the plain classifier on the synthetic birds.

All three share the backbone, data, seed and budget: one plain stage of
``--plain-epochs`` trains the backbone (CAL's x100 logit scale does not
learn from scratch on a CPU budget), then each method trains
``--method-epochs`` more from that checkpoint with its own config:

- plain: ``configs/synthetic/plain_r18_synthetic-birds.py`` continued
  (backbone and head loaded);
- WS-DAN: ``configs/synthetic/wsdan_r18_synthetic-birds.py`` (CAL without
  the effect loss), backbone loaded;
- CAL: ``configs/cal_r18_synthetic-birds.py``, backbone loaded.

Measured on the test split, with the mean attention map upsampled to the
image bilinearly with corners aligned (as the crops use it): top-1 of each
model's test views; how often the map's peak lies inside one of the five
part boxes of ``parts/part_boxes.txt``; and the share of the map's mass
(clipped at 0) inside the union of those boxes, and inside the bird's box
of ``bounding_boxes.txt``. The plain classifier has no attention maps; its
class activation map (the head's weights of the predicted class over the
last feature map) takes their place. ``chance`` is the share of the image
that the boxes cover: the hit rate of a random peak, and the mass share of
a uniform map. The peak only reaches the upsampled grid points of a coarse
map (36 points ~19 px apart for 6 x 6 maps of 96 px images, parts ~8 px),
so the mass share is the finer measure.

``--eval-only`` skips training and evaluates the checkpoints a previous
run left in ``--work-dir`` (``<name>/epoch_<epochs>.pth``), each with the
config saved beside it; its logs go to ``<work-dir>/eval``.

Example::

    python tools/analysis_tools/compare_methods.py \
        --data-root data/synthetic_birds --work-dir work_dirs/compare
"""
import argparse
import glob
import os.path as osp
import time
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.runner import Runner
from torchvision.ops import box_convert

from mmcal.datasets.synthetic import DEMO_SET, ensure_synthetic_birds
from mmcal.models.utils import upsample_guide
from mmcal.runtime.runner import DATALOADERS, build_runner, load_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PLAIN_CONFIG = osp.join(ROOT, 'configs', 'synthetic',
                        'plain_r18_synthetic-birds.py')
WSDAN_CONFIG = osp.join(ROOT, 'configs', 'synthetic',
                        'wsdan_r18_synthetic-birds.py')
CAL_CONFIG = osp.join(ROOT, 'configs', 'cal_r18_synthetic-birds.py')
METHODS = (('plain', PLAIN_CONFIG), ('WS-DAN', WSDAN_CONFIG),
           ('CAL', CAL_CONFIG))


def load_boxes(data_root: str, boxes_file: str) -> Dict[str, np.ndarray]:
    """``{image path under images/: (P, 4) boxes (x1, y1, x2, y2)}`` from
    ``images.txt`` and ``boxes_file`` (CUB's lines ``image_id [part_id] x y
    w h``, e.g. ``parts/part_boxes.txt`` or ``bounding_boxes.txt``)."""
    with open(osp.join(data_root, 'images.txt')) as file:
        paths = dict(line.split() for line in file if line.strip())
    boxes: Dict[str, List[List[float]]] = {}
    with open(osp.join(data_root, boxes_file)) as file:
        for line in file:
            if line.strip():
                image_id, *_, x, y, w, h = line.split()
                boxes.setdefault(paths[image_id], []).append(
                    [float(x), float(y), float(w), float(h)])
    return {
        path: box_convert(torch.tensor(value, dtype=torch.float64), 'xywh',
                          'xyxy').numpy()
        for path, value in boxes.items()
    }


def mean_maps(maps: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
    """(B, H, W) means of (B, M, h, w) maps over M, upsampled bilinearly
    with corners aligned to ``image_size`` (H, W)."""
    upsampled, _ = upsample_guide(maps.mean(dim=1, keepdim=True), image_size,
                                  1.0)
    return upsampled[:, 0]


def peak_points(maps: torch.Tensor, image_size: Sequence[int]) -> np.ndarray:
    """Pixel centres ``(x, y)`` of the peaks of the mean maps.

    Args:
        maps: (B, M, h, w) attention maps (M = 1 for a single map).
        image_size: (H, W) of the images.

    Returns:
        (B, 2) array of ``(column + 0.5, row + 0.5)``, the first maximum in
        row-major order.
    """
    flat = mean_maps(maps, image_size).flatten(1).argmax(dim=1)
    width = image_size[1]
    rows, cols = flat // width, flat % width
    return torch.stack([cols, rows], dim=1).numpy() + 0.5


def inside_any(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) True where point n (x, y) of (N, 2) lies inside any of the
    (P, 4) boxes (x1, y1, x2, y2), edges included."""
    x, y = points[:, :1], points[:, 1:]
    x1, y1, x2, y2 = boxes.T
    return np.any((x1 <= x) & (x <= x2) & (y1 <= y) & (y <= y2), axis=1)


def points_in_boxes(points: np.ndarray,
                    boxes: Sequence[np.ndarray]) -> np.ndarray:
    """(B,) True where point b lies inside any of its boxes (x1, y1, x2,
    y2), edges included."""
    return np.array([
        inside_any(point[None], image_boxes)[0]
        for point, image_boxes in zip(points, boxes)
    ])


def box_mask(boxes: np.ndarray, image_size: Sequence[int]) -> np.ndarray:
    """(H, W) True at the pixels whose centres lie inside the union of the
    (P, 4) boxes."""
    height, width = image_size
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return inside_any(points, boxes).reshape(height, width)


def box_coverage(boxes: np.ndarray, image_size: Sequence[int]) -> float:
    """Share of the image's pixel centres inside the union of boxes."""
    return float(box_mask(boxes, image_size).mean())


def mass_in_boxes(maps: torch.Tensor, boxes: Sequence[np.ndarray],
                  image_size: Sequence[int]) -> np.ndarray:
    """Share of each mean map's mass inside the union of its boxes.

    Args:
        maps: (B, M, h, w) attention maps (M = 1 for a single map).
        boxes: B arrays of (P, 4) boxes (x1, y1, x2, y2).
        image_size: (H, W) of the images.

    Returns:
        (B,) shares in [0, 1] of the upsampled mean map (``mean_maps``),
        clipped at 0 (a CAM has negative evidence), on pixels whose centres
        lie inside the boxes. A map with no positive mass counts as
        uniform: its share is the boxes' coverage.
    """
    mass = mean_maps(maps, image_size).clamp(min=0).double().numpy()
    masks = np.stack([box_mask(b, image_size) for b in boxes])
    total = mass.sum(axis=(1, 2))
    inside = (mass * masks).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.where(total > 0, total, 1),
                    masks.mean(axis=(1, 2)))


def class_activation_maps(model, inputs: torch.Tensor,
                          labels: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) CAMs of ``labels`` for a GAP + linear-head classifier."""
    features = model.extract_feat(inputs, stage='backbone')[-1]
    weights = model.head.fc.weight[labels]  # (B, C)
    return torch.einsum('bc,bchw->bhw', weights, features)[:, None]


@torch.no_grad()
def evaluate(runner: Runner, part_boxes: Dict[str, np.ndarray],
             bird_boxes: Dict[str, np.ndarray], data_root: str) -> dict:
    """Means (%) over the test split of top-1, peak in a part box, attention
    mass in the part boxes and in the bird's box, and those boxes' shares
    of the image (``chance``, ``bird_chance``)."""
    model = runner.model
    model.eval()
    prefix = osp.join(data_root, 'images') + osp.sep
    measures = {
        key: []
        for key in ('peak_in_part', 'mass_in_part', 'chance', 'mass_in_bird',
                    'bird_chance')
    }
    correct = []
    for batch in runner.test_dataloader:
        data = model.data_preprocessor(batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        predictions = model.predict(inputs, samples)
        predicted = torch.stack([p.pred_label for p in predictions]).view(-1)
        truth = torch.cat([s.gt_label for s in samples])
        correct.extend((predicted == truth).tolist())
        if hasattr(model, 'get_attention_maps'):
            maps = model.get_attention_maps(inputs)
        else:
            maps = class_activation_maps(model, inputs, predicted)
        paths = [s.img_path[len(prefix):] for s in samples]
        parts = [part_boxes[path] for path in paths]
        birds = [bird_boxes[path] for path in paths]
        size = inputs.shape[-2:]
        measures['peak_in_part'].extend(
            points_in_boxes(peak_points(maps, size), parts))
        measures['mass_in_part'].extend(mass_in_boxes(maps, parts, size))
        measures['chance'].extend(box_coverage(b, size) for b in parts)
        measures['mass_in_bird'].extend(mass_in_boxes(maps, birds, size))
        measures['bird_chance'].extend(box_coverage(b, size) for b in birds)
    results = dict(top1=100 * np.mean(correct))
    results.update({key: 100 * np.mean(v) for key, v in measures.items()})
    return results


def method_runner(config: str, work_dir: str, name: str, data_root: str,
                  max_epochs: int, seed: int, load_from: str = None,
                  backbone_from: str = None) -> Runner:
    """A Runner of ``config`` on ``data_root`` for ``max_epochs``."""
    cfg = load_config(config)
    for loader in DATALOADERS:
        cfg[loader].dataset.data_root = data_root
    cfg.train_cfg.max_epochs = max_epochs
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.work_dir = osp.join(work_dir, name)
    # Two runners started in the same second would share a logger.
    cfg.experiment_name = f'{name}_{time.strftime("%Y%m%d_%H%M%S")}'
    cfg.log_level = 'WARNING'
    cfg.load_from = load_from
    if backbone_from:
        cfg.model.backbone.init_cfg = dict(
            type='Pretrained', checkpoint=backbone_from, prefix='backbone.')
    return build_runner(cfg)


def trained_runner(config: str, work_dir: str, name: str, data_root: str,
                   epochs: int, seed: int, eval_only: bool,
                   **init) -> Runner:
    """The Runner of ``name`` trained for ``epochs``, or, with
    ``eval_only``, built from the config saved in ``work_dir/name`` with
    the weights of its ``epoch_<epochs>.pth``."""
    if not eval_only:
        runner = method_runner(config, work_dir, name, data_root, epochs,
                               seed, **init)
        runner.train()
        return runner
    trained_dir = osp.join(work_dir, name)
    configs = glob.glob(osp.join(trained_dir, '*.py'))
    if len(configs) != 1:
        raise FileNotFoundError(
            f'--eval-only needs one saved config in {trained_dir}, found '
            f'{len(configs)}; train there first (without --eval-only)')
    runner = method_runner(configs[0], osp.join(work_dir, 'eval'), name,
                           data_root, epochs, seed)
    runner.load_checkpoint(
        osp.join(trained_dir, f'epoch_{epochs}.pth'), strict=True)
    return runner


def compare(data_root: str, work_dir: str, plain_epochs: int,
            method_epochs: int, seed: int,
            eval_only: bool = False) -> Dict[str, dict]:
    part_boxes = load_boxes(data_root, osp.join('parts', 'part_boxes.txt'))
    bird_boxes = load_boxes(data_root, 'bounding_boxes.txt')
    runner = trained_runner(PLAIN_CONFIG, work_dir, 'stage1_plain', data_root,
                            plain_epochs, seed, eval_only)
    stage1 = osp.join(work_dir, 'stage1_plain', f'epoch_{plain_epochs}.pth')
    results = {
        'plain, stage 1': evaluate(runner, part_boxes, bird_boxes, data_root)
    }
    for name, config in METHODS:
        start = time.perf_counter()
        runner = trained_runner(
            config, work_dir, name, data_root, method_epochs, seed,
            eval_only, load_from=stage1 if name == 'plain' else None,
            backbone_from=None if name == 'plain' else stage1)
        results[name] = evaluate(runner, part_boxes, bird_boxes, data_root)
        results[name]['seconds'] = time.perf_counter() - start
    return results


def format_table(results: Dict[str, dict]) -> str:
    lines = [
        '| model | top-1 (%) | peak in a part box (%) | attention mass in '
        'part boxes (%) | part boxes\' area = chance (%) | attention mass '
        'in bird box (%) | bird box\'s area = chance (%) |',
        '|---|---|---|---|---|---|---|'
    ]
    for name, row in results.items():
        lines.append(f'| {name} | {row["top1"]:.1f} | '
                     f'{row["peak_in_part"]:.1f} | {row["mass_in_part"]:.1f} '
                     f'| {row["chance"]:.1f} | {row["mass_in_bird"]:.1f} | '
                     f'{row["bird_chance"]:.1f} |')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/synthetic_birds')
    parser.add_argument('--work-dir', default='work_dirs/compare')
    parser.add_argument('--plain-epochs', type=int, default=15,
                        help='epochs of the shared plain stage')
    parser.add_argument('--method-epochs', type=int, default=6,
                        help='epochs of each method after it')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--eval-only', action='store_true',
        help='evaluate the checkpoints of a previous run in --work-dir '
        'instead of training')
    args = parser.parse_args(argv)
    # The schedules warm up for one epoch, then decay.
    if min(args.plain_epochs, args.method_epochs) < 2:
        parser.error('--plain-epochs and --method-epochs must be >= 2')
    return args


def main(argv=None) -> Dict[str, dict]:
    args = parse_args(argv)
    data_root = osp.abspath(args.data_root)
    ensure_synthetic_birds(data_root, **DEMO_SET)
    results = compare(data_root, osp.abspath(args.work_dir),
                      args.plain_epochs, args.method_epochs, args.seed,
                      args.eval_only)
    print(format_table(results))
    return results


if __name__ == '__main__':
    main()
