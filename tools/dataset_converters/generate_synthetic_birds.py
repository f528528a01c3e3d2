"""Write the synthetic fine-grained bird set in the CUB-200-2011 layout.

Example::

    python tools/dataset_converters/generate_synthetic_birds.py \
        --out data/synthetic_birds --num-classes 10 --per-class 30 --size 96
"""
import argparse
import time

from mmcal.datasets import write_synthetic_birds


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--num-classes', type=int, default=10)
    parser.add_argument('--per-class', type=int, default=30,
                        help='images per class (train + test)')
    parser.add_argument('--size', type=int, default=96,
                        help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--test-fraction', type=float, default=0.3,
                        help='share of each class in the test split')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    counts = write_synthetic_birds(args.out, args.num_classes,
                                   args.per_class, args.size, args.seed,
                                   args.test_fraction)
    print(f'Wrote {counts["train"]} train and {counts["test"]} test images '
          f'of {args.num_classes} species to {args.out} in '
          f'{time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
