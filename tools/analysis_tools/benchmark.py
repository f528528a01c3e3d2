"""Speed of CAL against a plain classifier, and of batched crop + drop.

Two measurements, each interleaving its contenders repetition by repetition
(so a change of machine load hits both alike) and reporting medians:

1. A CAL training iteration (loss, backward, SGD step: raw pass plus one
   pass over the 2B crops and drops) against a plain mmpretrain
   ``ImageClassifier`` (ResNet + global average pooling + linear head) with
   the same backbone, batch and input. The floor of the ratio is about 3;
   the plain model is also timed on 2B images, so that ``plain(B) +
   plain(2B)`` gives the floor on this machine (a CPU is not linear in the
   batch size) and ``CAL / floor`` the cost of CAL's own layers.
2. ``AttentionCropDrop.augment`` (the whole batch at once) against the
   reference's per-sample loop (written below in the WS-DAN style, with a
   ``.item()`` read-back and ``nonzero`` per sample).
3. Prediction on the CPU: the CAL model's ``predict`` in PyTorch against
   the same model exported to ONNX and run by onnxruntime (with as many
   threads as torch, not spinning between calls), for the raw view alone and for the paper's test views
   (raw + 3 crops, and the same for the flipped image). Needs the
   ``deploy`` extra.

Examples::

    python tools/analysis_tools/benchmark.py
    python tools/analysis_tools/benchmark.py --device cuda --amp --channels-last
    python tools/analysis_tools/benchmark.py --skip iteration crop-drop
"""
import argparse
import os
import platform
import random
import statistics
import time

import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmcal  # noqa: F401

IMAGENET_NORM = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--depth', type=int, default=18, help='ResNet depth')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--num-attentions', type=int, default=32)
    parser.add_argument('--num-classes', type=int, default=200)
    parser.add_argument('--crop-batch-size', type=int, default=32)
    parser.add_argument('--crop-image-size', type=int, default=224)
    parser.add_argument(
        '--map-size', type=int, default=14, help='attention map side')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument(
        '--amp', action='store_true', help='bf16 autocast for the iterations')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument(
        '--predict-batch-size',
        type=int,
        default=1,
        help='images per call in the prediction part')
    parser.add_argument(
        '--skip',
        nargs='+',
        default=[],
        choices=['iteration', 'crop-drop', 'predict'],
        help='skip these parts')
    return parser.parse_args(argv)


def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            names = [
                line.split(':', 1)[1].strip() for line in cpuinfo
                if line.startswith('model name')
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(
        os, 'sched_getaffinity') else os.cpu_count()
    lines = [
        f'CPU: {cpu}, {os.cpu_count()} logical cores ({usable} usable)',
        f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads, '
        f'Python {platform.python_version()}',
        'load average (1, 5, 15 min): %.2f %.2f %.2f' % os.getloadavg(),
    ]
    if device.type == 'cuda':
        lines.append(f'GPU: {torch.cuda.get_device_name(device)}')
    return '\n'.join(lines)


def synchronize(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(function, device: torch.device) -> float:
    """Seconds one call of ``function`` takes, the device included."""
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def interleaved(contenders: dict, repeats: int, warmup: int,
                device: torch.device) -> dict:
    """Run the contenders in turn ``warmup + repeats`` times; their times."""
    times = {name: [] for name in contenders}
    for repeat in range(warmup + repeats):
        for name, function in contenders.items():
            seconds = timed(function, device)
            if repeat >= warmup:
                times[name].append(seconds)
    return times


def backbone_cfg(depth: int) -> dict:
    return dict(type='ResNet', depth=depth, out_indices=(3, ))


def build_models(args, device: torch.device):
    channels = 512 if args.depth < 50 else 2048
    torch.manual_seed(0)
    cal = MODELS.build(
        dict(
            type='CALClassifier',
            backbone=backbone_cfg(args.depth),
            neck=dict(
                type='BAPNeck',
                in_channels=channels,
                num_attentions=args.num_attentions),
            head=dict(
                type='CALHead',
                num_classes=args.num_classes,
                in_channels=args.num_attentions * channels),
            data_preprocessor=dict(type='AttentionCropDrop',
                                   **IMAGENET_NORM)))
    torch.manual_seed(0)
    plain = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone_cfg(args.depth),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=args.num_classes,
                in_channels=channels),
            data_preprocessor=dict(**IMAGENET_NORM)))
    memory_format = (
        torch.channels_last if args.channels_last else torch.preserve_format)
    return [
        model.to(device=device, memory_format=memory_format).train()
        for model in (cal, plain)
    ]


def training_iteration(model, inputs, data_samples, optim_wrapper, amp,
                       device):
    """One step as mmengine's train_step runs it, on a normalised batch."""

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            losses = model.loss(inputs, data_samples)
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)

    return step


def benchmark_iteration(args, device: torch.device):
    cal, plain = build_models(args, device)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(
        args.batch_size, 3, args.image_size, args.image_size,
        generator=generator).to(device)
    if args.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(
        0, args.num_classes, (args.batch_size, ), generator=generator)
    data_samples = [
        DataSample().set_gt_label(label).to(device) for label in labels
    ]
    optim_wrappers = {
        model: OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
        for model in (cal, plain)
    }
    contenders = {
        'CAL':
        training_iteration(cal, inputs, data_samples, optim_wrappers[cal],
                           args.amp, device),
        'plain':
        training_iteration(plain, inputs, data_samples, optim_wrappers[plain],
                           args.amp, device),
        # CAL's passes without its head: the plain model on B then 2B.
        'plain 2B':
        training_iteration(plain, torch.cat([inputs, inputs]),
                           data_samples * 2, optim_wrappers[plain], args.amp,
                           device),
    }
    times = interleaved(contenders, args.repeats, args.warmup, device)
    cal_time = statistics.median(times['CAL'])
    plain_time = statistics.median(times['plain'])
    floor_time = plain_time + statistics.median(times['plain 2B'])
    ratios = [c / p for c, p in zip(times['CAL'], times['plain'])]
    print(f'\n(a) training iteration, ResNet-{args.depth}, batch '
          f'{args.batch_size}, {args.image_size} px, M={args.num_attentions}, '
          f'K={args.num_classes}, {"bf16 autocast" if args.amp else "fp32"}'
          f'{", channels_last" if args.channels_last else ""}')
    print(f'    CAL   median {cal_time * 1000:9.1f} ms '
          f'(all: {fmt_ms(times["CAL"])})')
    print(f'    plain median {plain_time * 1000:9.1f} ms '
          f'(all: {fmt_ms(times["plain"])})')
    print(f'    plain 2B median {statistics.median(times["plain 2B"]) * 1000:6.1f}'
          f' ms (all: {fmt_ms(times["plain 2B"])})')
    print(f'    CAL / plain: ratio of medians {cal_time / plain_time:.3f}, '
          f'median of per-repeat ratios {statistics.median(ratios):.3f}')
    print(f'    floor (plain B + plain 2B) / plain = '
          f'{floor_time / plain_time:.3f}; CAL / floor = '
          f'{cal_time / floor_time:.3f}')


def reference_crop_drop(images, crop_maps, drop_maps, crop_theta=(0.4, 0.6),
                        drop_theta=(0.2, 0.5), padding_ratio=0.1):
    """The reference's per-sample crop and drop loops (WS-DAN style)."""
    height, width = images.shape[-2:]
    crops = []
    for index in range(images.shape[0]):
        guide = crop_maps[index:index + 1]
        threshold = random.uniform(*crop_theta) * guide.max()
        mask = F.interpolate(
            guide, size=(height, width), mode='bilinear',
            align_corners=True) >= threshold
        rows_cols = torch.nonzero(mask[0, 0])
        top = max(int(rows_cols[:, 0].min().item() - padding_ratio * height),
                  0)
        bottom = min(
            int(rows_cols[:, 0].max().item() + padding_ratio * height),
            height)
        left = max(int(rows_cols[:, 1].min().item() - padding_ratio * width),
                   0)
        right = min(
            int(rows_cols[:, 1].max().item() + padding_ratio * width), width)
        crops.append(
            F.interpolate(
                images[index:index + 1, :, top:bottom, left:right],
                size=(height, width),
                mode='bilinear',
                align_corners=True))
    masks = []
    for index in range(images.shape[0]):
        guide = drop_maps[index:index + 1]
        threshold = random.uniform(*drop_theta) * guide.max()
        masks.append(
            F.interpolate(
                guide,
                size=(height, width),
                mode='bilinear',
                align_corners=True) < threshold)
    return torch.cat([torch.cat(crops), images * torch.cat(masks).float()])


def benchmark_crop_drop(args, device: torch.device):
    preprocessor = MODELS.build(
        dict(type='AttentionCropDrop', **IMAGENET_NORM)).to(device)
    generator = torch.Generator().manual_seed(1)
    size, batch = args.crop_image_size, args.crop_batch_size
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    # Peaked, non-negative maps like ReLU attention.
    maps = (torch.rand(
        batch, 2, args.map_size, args.map_size, generator=generator)**4).to(
            device)
    crop_maps, drop_maps = maps[:, :1], maps[:, 1:]

    contenders = {
        'batched':
        lambda: preprocessor.augment(images, crop_maps, drop_maps),
        'loop': lambda: reference_crop_drop(images, crop_maps, drop_maps),
    }
    with torch.no_grad():
        times = interleaved(contenders, max(args.repeats, 9),
                            max(args.warmup, 2), device)
    batched = statistics.median(times['batched'])
    loop = statistics.median(times['loop'])
    print(f'\n(b) crop + drop, batch {batch}, {size} px, '
          f'{args.map_size}x{args.map_size} maps')
    print(f'    batched median {batched * 1000:8.1f} ms '
          f'(all: {fmt_ms(times["batched"])})')
    print(f'    loop    median {loop * 1000:8.1f} ms '
          f'(all: {fmt_ms(times["loop"])})')
    print(f'    loop / batched = {loop / batched:.2f}x')


def benchmark_predict(args):
    try:
        from mmcal.deployment import ONNXClassifier, export_onnx
    except ImportError as error:
        print(f'\n(c) prediction skipped: {error} '
              '(pip install -e ".[deploy]")')
        return
    import tempfile
    cal, _ = build_models(args, torch.device('cpu'))
    cal.eval()
    generator = torch.Generator().manual_seed(2)
    size, batch = args.image_size, args.predict_batch_size
    images = torch.randint(
        0, 256, (batch, 3, size, size), generator=generator).float()
    all_views = {
        'raw': dict(crops=[], flip=False),
        'test': dict(crops=[(0.3, 0.1), (0.2, 0.1), (0.1, 0.05)], flip=True),
    }
    contenders = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, views in all_views.items():
            path = f'{folder}/{name}.onnx'
            export_onnx(cal, path, (size, size), views)
            # Spinning threads would slow PyTorch, timed in turn.
            session = ONNXClassifier(
                path, torch.get_num_threads(), spin=False)

            def pytorch(views=views):
                inputs = cal.data_preprocessor(dict(inputs=images),
                                               False)['inputs']
                cal.predict(inputs, views=views)

            contenders[f'PyTorch {name}'] = pytorch
            contenders[f'onnxruntime {name}'] = (
                lambda session=session: session(images.numpy()))
        with torch.no_grad():
            times = interleaved(contenders, max(args.repeats, 9),
                                max(args.warmup, 2), torch.device('cpu'))
    print(f'\n(c) prediction on the CPU, ResNet-{args.depth}, batch {batch}, '
          f'{size} px, M={args.num_attentions}, K={args.num_classes}, fp32; '
          f'per image')
    for name in all_views:
        medians = {
            backend: statistics.median(times[f'{backend} {name}']) / batch
            for backend in ('PyTorch', 'onnxruntime')
        }
        ratios = [
            p / o for p, o in zip(times[f'PyTorch {name}'],
                                  times[f'onnxruntime {name}'])
        ]
        print(f'    {name:4} views: PyTorch {medians["PyTorch"] * 1000:7.1f} '
              f'ms, onnxruntime {medians["onnxruntime"] * 1000:7.1f} ms, '
              f'PyTorch / onnxruntime: median of per-repeat ratios '
              f'{statistics.median(ratios):.2f}')


def fmt_ms(seconds) -> str:
    return ' '.join(f'{s * 1000:.0f}' for s in seconds)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda given but CUDA is not available')
    print(machine_description(device))
    if 'iteration' not in args.skip:
        benchmark_iteration(args, device)
    if 'crop-drop' not in args.skip:
        benchmark_crop_drop(args, device)
    if 'predict' not in args.skip:
        benchmark_predict(args)
    print('\nload average after (1, 5, 15 min): %.2f %.2f %.2f' %
          os.getloadavg())


if __name__ == '__main__':
    main()
