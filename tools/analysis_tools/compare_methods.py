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

Measured on the test split: top-1 of each model's test views, and how
often the peak of the mean attention map, upsampled to the image with
corners aligned (as the crops use it), lies inside one of the five part
boxes of ``parts/part_boxes.txt``. The plain classifier has no attention
maps; its class activation map (the head's weights of the predicted class
over the last feature map) takes their place. ``chance`` is the share of
the image that the part boxes cover: the hit rate of a random peak.

Example::

    python tools/analysis_tools/compare_methods.py \
        --data-root data/synthetic_birds --work-dir work_dirs/compare
"""
import argparse
import os.path as osp
import sys
import time
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from demo import CAL_CONFIG, PLAIN_CONFIG, ROOT, ensure_data  # noqa: E402

from mmcal.models.utils import upsample_guide  # noqa: E402
from mmcal.utils.config import load_config  # noqa: E402

WSDAN_CONFIG = osp.join(ROOT, 'configs', 'synthetic',
                        'wsdan_r18_synthetic-birds.py')
METHODS = (('plain', PLAIN_CONFIG), ('WS-DAN', WSDAN_CONFIG),
           ('CAL', CAL_CONFIG))


def load_part_boxes(data_root: str) -> Dict[str, np.ndarray]:
    """``{image path under images/: (P, 4) boxes (x, y, w, h)}`` from
    ``images.txt`` and ``parts/part_boxes.txt``."""
    with open(osp.join(data_root, 'images.txt')) as file:
        paths = dict(line.split() for line in file if line.strip())
    boxes: Dict[str, List[List[float]]] = {}
    with open(osp.join(data_root, 'parts', 'part_boxes.txt')) as file:
        for line in file:
            if line.strip():
                image_id, _, *box = line.split()
                boxes.setdefault(paths[image_id], []).append(
                    [float(v) for v in box])
    return {path: np.array(value) for path, value in boxes.items()}


def peak_points(maps: torch.Tensor, image_size: Sequence[int]) -> np.ndarray:
    """Pixel centres ``(x, y)`` of the peaks of the mean maps.

    Args:
        maps: (B, M, h, w) attention maps (M = 1 for a single map).
        image_size: (H, W) of the images.

    Returns:
        (B, 2) array of ``(column + 0.5, row + 0.5)``, the first maximum in
        row-major order.
    """
    upsampled, _ = upsample_guide(maps.mean(dim=1, keepdim=True), image_size,
                                  1.0)
    flat = upsampled.flatten(1).argmax(dim=1)
    width = image_size[1]
    rows, cols = flat // width, flat % width
    return torch.stack([cols, rows], dim=1).numpy() + 0.5


def points_in_boxes(points: np.ndarray,
                    boxes: Sequence[np.ndarray]) -> np.ndarray:
    """(B,) True where point b lies inside any of its boxes (x, y, w, h),
    edges included."""
    hits = []
    for (x, y), image_boxes in zip(points, boxes):
        x1, y1 = image_boxes[:, 0], image_boxes[:, 1]
        x2, y2 = x1 + image_boxes[:, 2], y1 + image_boxes[:, 3]
        hits.append(bool(np.any((x1 <= x) & (x <= x2) & (y1 <= y) &
                                (y <= y2))))
    return np.array(hits)


def box_coverage(boxes: np.ndarray, image_size: Sequence[int]) -> float:
    """Share of the image's pixel centres inside the union of boxes."""
    height, width = image_size
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return float(points_in_boxes(points, [boxes] * len(points)).mean())


def class_activation_maps(model, inputs: torch.Tensor,
                          labels: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) CAMs of ``labels`` for a GAP + linear-head classifier."""
    features = model.extract_feat(inputs, stage='backbone')[-1]
    weights = model.head.fc.weight[labels]  # (B, C)
    return torch.einsum('bc,bchw->bhw', weights, features)[:, None]


@torch.no_grad()
def evaluate(runner: Runner, part_boxes: Dict[str, np.ndarray],
             data_root: str) -> dict:
    """Top-1 (%), peak-in-part rate (%) and chance (%) on the test split."""
    model = runner.model
    model.eval()
    prefix = osp.join(data_root, 'images') + osp.sep
    correct, hits, chance = [], [], []
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
        boxes = [part_boxes[s.img_path[len(prefix):]] for s in samples]
        size = inputs.shape[-2:]
        hits.extend(points_in_boxes(peak_points(maps, size), boxes))
        chance.extend(box_coverage(b, size) for b in boxes)
    return dict(top1=100 * np.mean(correct), peak_in_part=100 * np.mean(hits),
                chance=100 * np.mean(chance))


def build_runner(config: str, work_dir: str, name: str, data_root: str,
                 max_epochs: int, seed: int, load_from: str = None,
                 backbone_from: str = None) -> Runner:
    """A Runner of ``config`` on ``data_root`` for ``max_epochs``."""
    cfg = load_config(config)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
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
    return Runner.from_cfg(cfg)


def compare(data_root: str, work_dir: str, plain_epochs: int,
            method_epochs: int, seed: int) -> Dict[str, dict]:
    part_boxes = load_part_boxes(data_root)
    runner = build_runner(PLAIN_CONFIG, work_dir, 'stage1_plain', data_root,
                          plain_epochs, seed)
    runner.train()
    stage1 = osp.join(runner.work_dir, f'epoch_{plain_epochs}.pth')
    results = {'plain, stage 1': evaluate(runner, part_boxes, data_root)}
    for name, config in METHODS:
        start = time.perf_counter()
        runner = build_runner(
            config, work_dir, name, data_root, method_epochs, seed,
            load_from=stage1 if name == 'plain' else None,
            backbone_from=None if name == 'plain' else stage1)
        runner.train()
        results[name] = evaluate(runner, part_boxes, data_root)
        results[name]['seconds'] = time.perf_counter() - start
    return results


def format_table(results: Dict[str, dict]) -> str:
    lines = [
        '| model | top-1 (%) | mean-attention peak in a part box (%) | '
        'chance (%) |', '|---|---|---|---|'
    ]
    for name, row in results.items():
        lines.append(f'| {name} | {row["top1"]:.1f} | '
                     f'{row["peak_in_part"]:.1f} | {row["chance"]:.1f} |')
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
    args = parser.parse_args(argv)
    # The schedules warm up for one epoch, then decay.
    if min(args.plain_epochs, args.method_epochs) < 2:
        parser.error('--plain-epochs and --method-epochs must be >= 2')
    return args


def main(argv=None) -> Dict[str, dict]:
    args = parse_args(argv)
    data_root = osp.abspath(args.data_root)
    ensure_data(data_root)
    results = compare(data_root, osp.abspath(args.work_dir),
                      args.plain_epochs, args.method_epochs, args.seed)
    print(format_table(results))
    return results


if __name__ == '__main__':
    main()
