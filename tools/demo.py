"""The demo of ``make demo``: CAL on the built-in synthetic birds, on a CPU.

1. Writes the synthetic bird set to ``--data-root`` unless it is there.
2. Trains the plain classifier
   ``configs/synthetic/plain_r18_synthetic-birds.py`` (CAL's x100 logit
   scale does not learn from scratch in a CPU budget, and the reference
   always starts from a trained backbone).
3. Trains ``configs/cal_r18_synthetic-birds.py`` with its backbone
   initialised from that checkpoint.
4. Tests the CAL checkpoint with ``tools/test.py`` and prints its top-1.
5. Draws attention maps of a few test images with
   ``tools/visualize_attention.py``.

Every step runs the repository's own tools in a subprocess, exactly as a
user would. The synthetic set has no validation split: validation runs on
its test split, and the last checkpoint (not the best) is tested, so the
test result was not selected on the test images.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import time
from typing import List, Sequence

from mmcal.datasets.synthetic import DEMO_SET, ensure_synthetic_birds
from mmcal.runtime.runner import DATALOADERS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PLAIN_CONFIG = osp.join(ROOT, 'configs', 'synthetic',
                        'plain_r18_synthetic-birds.py')
CAL_CONFIG = osp.join(ROOT, 'configs', 'cal_r18_synthetic-birds.py')


def ensure_data(data_root: str) -> None:
    """Write the synthetic set to ``data_root`` unless it is there."""
    start = time.perf_counter()
    counts = ensure_synthetic_birds(data_root, **DEMO_SET)
    if counts is None:
        print(f'Using the synthetic birds in {data_root}')
    else:
        print(f'Wrote {counts["train"]} train and {counts["test"]} test '
              f'images to {data_root} in {time.perf_counter() - start:.1f} s')


def data_root_options(data_root: str) -> List[str]:
    """``--cfg-options`` pointing every loader of a config at
    ``data_root``."""
    return [
        f'{loader}.dataset.data_root={data_root}' for loader in DATALOADERS
    ]


def backbone_init_options(checkpoint: str) -> List[str]:
    """``--cfg-options`` initialising the backbone from another model's
    checkpoint (its ``backbone.`` keys)."""
    return [
        'model.backbone.init_cfg.type=Pretrained',
        f'model.backbone.init_cfg.checkpoint={checkpoint}',
        'model.backbone.init_cfg.prefix=backbone.',
    ]


def run_tool(tool: str, args: Sequence[str]) -> None:
    """Run ``tools/<tool>`` with this Python; raise if it fails."""
    command = [sys.executable, osp.join(ROOT, 'tools', tool), *args]
    print('$ ' + ' '.join(command), flush=True)
    subprocess.run(command, check=True)


def train(config: str, work_dir: str, options: Sequence[str]) -> str:
    """Train with ``tools/train.py``; return the last checkpoint's path."""
    run_tool('train.py',
             [config, '--work-dir', work_dir, '--cfg-options', *options])
    with open(osp.join(work_dir, 'last_checkpoint')) as file:
        return file.read().strip()


def test_top1(config: str, checkpoint: str, work_dir: str,
              options: Sequence[str]) -> float:
    """Top-1 (%) of ``checkpoint`` measured by ``tools/test.py``."""
    metrics_file = osp.join(work_dir, 'test_metrics.json')
    run_tool('test.py', [
        config, checkpoint, '--work-dir', work_dir, '--out', metrics_file,
        '--out-item', 'metrics', '--cfg-options', *options
    ])
    with open(metrics_file) as file:
        return float(json.load(file)['accuracy/top1'])


def test_images(data_root: str, count: int) -> List[str]:
    """The first test image of each of the first ``count`` classes."""
    with open(osp.join(data_root, 'images.txt')) as file:
        paths = dict(line.split() for line in file if line.strip())
    with open(osp.join(data_root, 'train_test_split.txt')) as file:
        test_ids = [i for i, flag in (line.split() for line in file
                                      if line.strip()) if flag == '0']
    picked = {}
    for image_id in test_ids:
        folder = paths[image_id].split('/')[0]
        if folder not in picked and len(picked) < count:
            picked[folder] = osp.join(data_root, 'images', paths[image_id])
    return list(picked.values())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/synthetic_birds')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--num-pictures', type=int, default=4,
        help='test images whose attention maps are drawn')
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    start = time.perf_counter()
    data_root = osp.abspath(args.data_root)
    work_dir = osp.abspath(args.work_dir)
    ensure_data(data_root)
    data = data_root_options(data_root)

    plain = train(PLAIN_CONFIG, osp.join(work_dir, 'plain'), data)
    cal = train(CAL_CONFIG, osp.join(work_dir, 'cal'),
                data + backbone_init_options(plain))
    top1 = test_top1(CAL_CONFIG, cal, osp.join(work_dir, 'test'), data)

    out_dir = osp.join(work_dir, 'attention')
    run_tool('visualize_attention.py', [
        CAL_CONFIG, cal, *test_images(data_root, args.num_pictures),
        '--out-dir', out_dir
    ])
    print(f'Attention pictures: {out_dir}')
    print(f'Demo finished in {time.perf_counter() - start:.0f} s.')
    print(f'CAL checkpoint {cal}\n'
          f'Top-1 accuracy on the synthetic test split: {top1:.2f} %')
    return top1


if __name__ == '__main__':
    main()
