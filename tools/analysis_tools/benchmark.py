"""Speed of mmcal's CAL step against the reference's and a plain classifier.

Every measurement interleaves its contenders run by run (the order rotating
each round), so a change of machine load hits all of them alike; it reports
medians, ratios of medians and medians of the per-round ratios.

1. Training iteration (forward, backward, SGD step), each contender in each
   memory layout asked for (``--layouts``: ``contiguous``, the default
   layout; ``channels_last``; ``mixed``, channels_last but for the
   backbone's modules named by ``--contiguous-modules``, by default the last
   stage) and precision (``--precisions``):
   - ``mmcal``: ``CALClassifier.train_step`` on a uint8 batch, as the Runner
     builds (``init_weights``) and calls it (normalisation, raw pass, crop +
     drop, one pass over the 2B augmented images, CAL's losses);
     channels_last through ``AttentionCropDrop(channels_last=True)``, mixed
     with ``CALClassifier(contiguous_modules=...)`` too;
   - ``reference``: the reference code's iteration, as it trains: a
     torchvision ResNet, guide maps drawn per sample on the host, the
     per-sample crop and drop loops of ``mmcal.testing.reference_ops``, the
     same losses, on an already normalised batch; it starts from mmcal's
     weights, so both compute on the same values;
   - ``plain``: mmpretrain's ``ImageClassifier`` (ResNet, global average
     pooling, linear head) ``train_step``, same backbone, batch and input.
2. Prediction: ``CALClassifier.test_step`` with the paper's test views (raw
   + 3 crops, and the same for the flipped image) against a plain
   ``ImageClassifier.test_step``.
3. Crop + drop alone: ``AttentionCropDrop.augment`` against the per-sample
   reference loops.
4. ONNX prediction on the CPU (``--skip onnx`` to leave out; needs the
   ``deploy`` extra): the CAL model's ``predict`` in PyTorch against the
   same model exported to ONNX and run by onnxruntime (as many threads as
   torch, not spinning between calls), for the raw view alone and for the
   paper's test views.
5. The feature-centre update alone: ``feature_center_update_`` (one
   process) against the reference's indexed in-place update, on (K, M * C)
   centres (``--num-attentions 32 --batch-size 16`` for the paper's size).
6. The SGD step alone on the CAL model's weights and fixed gradients: the
   bird recipe's optimizer (fused) against the reference's, and the fused
   step on channels_last weights against the same on default-layout ones.

The defaults are a CPU setting (ResNet-50 at output stride 16, M = 8, batch
4, 112 px, 9 runs; on a shared or virtual machine, where single runs vary by
10 % or more, ``--repeats 25`` steadies the medians); on a GPU, with peak
memory and a check that mmcal's step never waits on the device::

    python tools/analysis_tools/benchmark.py --threads 2 --repeats 25
    python tools/analysis_tools/benchmark.py --device cuda --depth 101 \\
        --image-size 448 --batch-size 16 --num-attentions 32 \\
        --precisions fp32 bf16
    python tools/analysis_tools/benchmark.py --skip iteration predict \
        crop-drop centres sgd --threads 1  # PyTorch vs onnxruntime only
"""
import argparse
import itertools
import os
import os.path as osp
import platform
import random
import statistics
import time
from collections import OrderedDict
from typing import Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmcal  # noqa: F401
from mmcal.models.heads import feature_center_update_
from mmcal.models.utils import keep_contiguous_format
from mmcal.testing.reference_ops import reference_crop, reference_drop

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
IMAGENET_NORM = dict(mean=MEAN, std=STD, to_rgb=True)
CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    '_base_')
# The paper's test views, as the recipes state them.
TEST_VIEWS = Config.fromfile(osp.join(CONFIGS, 'models',
                                      'cal_views.py')).cal_test_views
# The bird recipe's optimizer (SGD, lr 1e-3, momentum 0.9, fused), which
# mmcal and the plain model train with; the reference builds torch's SGD
# with the same settings and its defaults (a loop over the weights).
RECIPE_OPTIM_WRAPPER = Config.fromfile(
    osp.join(CONFIGS, 'schedules', 'birds_sgd_plateau.py')).optim_wrapper
LAYOUTS = ('contiguous', 'channels_last', 'mixed')
PRECISIONS = ('fp32', 'bf16')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument(
        '--depth', type=int, default=50, choices=[18, 34, 50, 101, 152],
        help='ResNet depth (last stage at stride 1: output stride 16)')
    parser.add_argument('--image-size', type=int, default=112)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--num-attentions', type=int, default=8)
    parser.add_argument('--num-classes', type=int, default=200)
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument(
        '--layouts', nargs='+', choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument(
        '--contiguous-modules', nargs='+', default=['backbone.layer4'],
        metavar='NAME',
        help='backbone modules that the mixed layout keeps in the default '
        'layout, named as in mmpretrain\'s models')
    parser.add_argument(
        '--precisions', nargs='+', choices=PRECISIONS, default=['fp32'],
        help='bf16 = bf16 autocast')
    parser.add_argument('--crop-batch-size', type=int, default=32)
    parser.add_argument('--crop-image-size', type=int, default=224)
    parser.add_argument(
        '--onnx-batch-size', type=int, default=1,
        help='images per call in the ONNX prediction part')
    parser.add_argument(
        '--skip', nargs='+', default=[],
        choices=[
            'iteration', 'predict', 'crop-drop', 'onnx', 'centres', 'sgd'
        ],
        help='parts to skip')
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
        f'torch {torch.__version__}, torchvision {torchvision.__version__}, '
        f'{torch.get_num_threads()} CPU threads, '
        f'Python {platform.python_version()}',
        'load average (1, 5, 15 min): %.2f %.2f %.2f' % os.getloadavg(),
    ]
    if device.type == 'cuda':
        lines.append(f'GPU: {torch.cuda.get_device_name(device)}')
    return '\n'.join(lines)


def synchronize(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved(contenders: dict, repeats: int, warmup: int,
                device: torch.device):
    """Run the contenders in turn ``warmup + repeats`` times.

    The order rotates every round, so no contender always runs right after
    the same other one.

    Returns:
        ``(times, peaks)``: seconds of each timed run per contender, and the
        peak device memory (bytes) of each contender's runs on CUDA.
    """
    names = list(contenders)
    times = {name: [] for name in names}
    peaks = {name: 0 for name in names}
    for repeat in range(warmup + repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            contenders[name]()
            synchronize(device)
            seconds = time.perf_counter() - start
            if device.type == 'cuda':
                peaks[name] = max(peaks[name],
                                  torch.cuda.max_memory_allocated(device))
            if repeat >= warmup:
                times[name].append(seconds)
    return times, peaks


def backbone_cfg(depth: int) -> dict:
    # Output stride 16, the reference's backbone.
    return dict(
        type='ResNet', depth=depth, strides=(1, 2, 2, 1), out_indices=(3, ))


def channels_of(depth: int) -> int:
    return 512 if depth < 50 else 2048


def initialised(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device`` with its ``init_cfg`` applied, as the Runner
    builds it.

    PyTorch's default initialisation that a model keeps without this makes
    this CPU's convolution backward some 10 % slower on the same shapes,
    which would be charged to mmcal and the plain model alike and not to
    the reference's torchvision ResNet, which initialises itself.
    """
    model.init_weights()
    return model.to(device)


def check_layout_names(args):
    """``--contiguous-modules`` names: the backbone's, which all three
    contenders have (the reference's under ``features``)."""
    others = [name for name in args.contiguous_modules
              if not name.startswith('backbone.')]
    if others:
        raise SystemExit(f'--contiguous-modules: {others} are not backbone '
                         "modules; give names like 'backbone.layer4'")


def build_mmcal(args, layout: str, device: torch.device):
    channels = channels_of(args.depth)
    contiguous = dict(contiguous_modules=args.contiguous_modules
                      ) if layout == 'mixed' else {}
    return initialised(MODELS.build(
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
            test_cfg=TEST_VIEWS,
            data_preprocessor=dict(
                type='AttentionCropDrop',
                channels_last=layout != 'contiguous',
                **IMAGENET_NORM),
            **contiguous)), device)


def to_layout(model: nn.Module, layout: str, module_names) -> nn.Module:
    """``model`` with its weights in ``layout``; ``module_names`` are kept
    in the default layout in the mixed one."""
    if layout != 'contiguous':
        model = model.to(memory_format=torch.channels_last)
    if layout == 'mixed':
        keep_contiguous_format(model, module_names)
    return model


def build_plain(args, layout: str, device: torch.device):
    model = initialised(MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone_cfg(args.depth),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=args.num_classes,
                in_channels=channels_of(args.depth)),
            data_preprocessor=dict(**IMAGENET_NORM))), device)
    # A plain model has no switch: its layout follows the inputs', so
    # converting the weights is all it takes.
    return to_layout(model, layout, args.contiguous_modules)


def reference_bap(features, attention_maps):
    """BAP as the reference writes it: einsum, signed sqrt, L2 norm."""
    height, width = features.shape[-2:]
    pooled = torch.einsum('imjk,injk->imn', attention_maps, features)
    pooled = pooled.flatten(1) / float(height * width)
    pooled = torch.sign(pooled) * torch.sqrt(pooled.abs() + 1e-6)
    return F.normalize(pooled, dim=-1)


class ReferenceCAL(nn.Module):
    """CAL's network as the reference code builds and trains it.

    A torchvision ResNet whose last stage runs at stride 1 (output stride
    16), the attention layer, BAP under the learned and under Uniform(0, 2)
    attention, a bias-free fc on ``100 * f`` and the feature centres.
    """

    def __init__(self, depth: int, num_attentions: int, num_classes: int):
        super().__init__()
        resnet = getattr(torchvision.models, f'resnet{depth}')()
        first = resnet.layer4[0]
        (first.conv2 if depth >= 50 else first.conv1).stride = (1, 1)
        first.downsample[0].stride = (1, 1)
        # torchvision's module names, which are mmpretrain's ResNet's.
        self.features = nn.Sequential(
            OrderedDict(list(resnet.named_children())[:-2]))
        channels = resnet.fc.in_features
        self.num_attentions = num_attentions
        self.attentions = nn.Sequential(
            nn.Conv2d(channels, num_attentions, 1, bias=False),
            nn.BatchNorm2d(num_attentions, eps=1e-3), nn.ReLU(inplace=True))
        self.fc = nn.Linear(num_attentions * channels, num_classes,
                            bias=False)
        self.register_buffer('feature_center',
                             torch.zeros(num_classes,
                                         num_attentions * channels))

    def load_mmcal_weights(self, model: nn.Module) -> 'ReferenceCAL':
        """Take the weights of ``model``, a ``CALClassifier`` of the same
        sizes, so that both contenders compute on the same values: this
        CPU's convolution speed depends on them."""
        self.features.load_state_dict(model.backbone.state_dict())
        self.attentions.load_state_dict(model.neck.attention.state_dict())
        self.fc.load_state_dict(model.head.fc.state_dict())
        return self

    def forward(self, images):
        features = self.features(images)
        attention_maps = self.attentions(features)
        part_features = reference_bap(features, attention_maps)
        fake = torch.zeros_like(attention_maps).uniform_(0, 2)
        logits = self.fc(part_features * 100)
        effect = logits - self.fc(reference_bap(features, fake) * 100)
        if not self.training:
            return logits, effect, part_features, attention_maps
        # Two guide maps per sample, drawn on the host sample by sample.
        guides = []
        for sample in attention_maps.detach():
            weights = torch.sqrt(sample.sum(dim=(1, 2)) + 1e-6)
            weights = (weights / weights.sum()).cpu().double().numpy()
            picks = np.random.choice(
                self.num_attentions, 2, p=weights / weights.sum())
            guides.append(sample[picks])
        return logits, effect, part_features, torch.stack(guides)


def build_reference(args, layout: str, cal: nn.Module,
                    device: torch.device) -> ReferenceCAL:
    """The reference network on ``cal``'s weights, in ``layout``."""
    reference = ReferenceCAL(args.depth, args.num_attentions,
                             args.num_classes).to(device)
    return to_layout(
        reference.load_mmcal_weights(cal), layout, [
            'features' + name[len('backbone'):]
            for name in args.contiguous_modules
        ])


def reference_center_update(feature_center, features, labels):
    """The reference's centre update, in place; the (B, D) targets."""
    centers = F.normalize(feature_center[labels], dim=-1)
    feature_center[labels] += 0.05 * (features.detach() - centers)
    return centers


def reference_iteration(model, images, labels, optimizer):
    """One iteration of the reference's training loop."""

    def step():
        logits, effect, features, guides = model(images)
        centers = reference_center_update(model.feature_center, features,
                                          labels)
        with torch.no_grad():
            thetas = [[random.uniform(*bounds) for _ in labels]
                      for bounds in ((0.4, 0.6), (0.2, 0.5))]
            _, crops = reference_crop(images, guides[:, :1], thetas[0], 0.1)
            drops = reference_drop(images, guides[:, 1:], thetas[1])
        aug_logits, aug_effect, _, _ = model(torch.cat([crops, drops]))
        loss = (F.cross_entropy(logits, labels) / 3 +
                F.cross_entropy(
                    torch.cat([effect, aug_effect]), labels.repeat(3)) +
                F.cross_entropy(aug_logits, labels.repeat(2)) * 2 / 3 +
                (features - centers).pow(2).sum() / labels.shape[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def autocast(device: torch.device, precision: str):
    return torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=precision == 'bf16')


def make_batch(args, device: torch.device):
    """A uint8 (B, 3, H, W) batch, its normalised copy and labels."""
    generator = torch.Generator().manual_seed(0)
    size = args.image_size
    raw = torch.randint(
        0, 256, (args.batch_size, 3, size, size),
        generator=generator, dtype=torch.uint8)
    labels = torch.randint(
        0, args.num_classes, (args.batch_size, ), generator=generator)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    normalised = (raw.flip(1).float() - mean) / std
    samples = [DataSample().set_gt_label(label).to(device) for label in labels]
    return raw.to(device), normalised.to(device), labels.to(device), samples


def reference_optimizer(model: nn.Module) -> torch.optim.SGD:
    """The reference's optimizer for the bird set: torch's SGD, lr 1e-3,
    momentum 0.9, its other settings left at torch's defaults."""
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)


def recipe_optim_wrapper(model: nn.Module):
    """The optimizer wrapper the bird recipe builds for ``model``."""
    return build_optim_wrapper(model, RECIPE_OPTIM_WRAPPER)


def mmengine_step(model, data, precision, device):
    """``model.train_step`` with the optimizer the bird recipe builds."""
    optim_wrapper = recipe_optim_wrapper(model)

    def step():
        with autocast(device, precision):
            model.train_step(data, optim_wrapper)

    return step


def ratio_line(times, numerator, denominator) -> str:
    per_round = [a / b for a, b in zip(times[numerator], times[denominator])]
    ratio = (statistics.median(times[numerator]) /
             statistics.median(times[denominator]))
    spread = ''
    if len(per_round) > 1:
        # How far apart single rounds land: on a shared machine a ratio
        # inside this range is no difference.
        low, _, high = statistics.quantiles(per_round, n=4)
        spread = f', quartiles {low:.3f} to {high:.3f}'
    return (f'    {numerator} / {denominator}: {ratio:.3f} '
            f'(median of per-round ratios {statistics.median(per_round):.3f}'
            f'{spread})')


def report(times, peaks, device):
    for name, values in times.items():
        peak = (f', peak {peaks[name] / 2**20:.0f} MiB'
                if device.type == 'cuda' else '')
        print(f'    {name:34s} median {statistics.median(values) * 1e3:8.1f} '
              f'ms{peak}  (all: {" ".join(f"{v * 1e3:.0f}" for v in values)})')


def check_no_host_sync(step, name):
    """Run ``step`` with CUDA's sync debug mode raising on a host sync."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        step()
        print(f'    {name}: no host synchronisation')
    except RuntimeError as error:
        print(f'    {name}: HOST SYNCHRONISATION: {error}')
    finally:
        torch.cuda.set_sync_debug_mode(0)


def benchmark_iteration(args, device: torch.device):
    raw, normalised, labels, samples = make_batch(args, device)
    data = dict(inputs=raw, data_samples=samples)
    contenders, mmcal_steps = {}, {}
    for precision, layout in itertools.product(args.precisions, args.layouts):
        suffix = f'{precision}, {layout}'
        torch.manual_seed(0)
        cal = build_mmcal(args, layout, device).train()
        mmcal_steps[suffix] = mmengine_step(cal, data, precision, device)
        contenders[f'mmcal ({suffix})'] = mmcal_steps[suffix]
        torch.manual_seed(0)
        reference = build_reference(args, layout, cal, device).train()
        images = normalised if layout == 'contiguous' else \
            normalised.contiguous(memory_format=torch.channels_last)
        optimizer = reference_optimizer(reference)
        step = reference_iteration(reference, images, labels, optimizer)
        contenders[f'reference ({suffix})'] = (
            lambda step=step, precision=precision: _in_autocast(
                step, device, precision))
        torch.manual_seed(0)
        plain = build_plain(args, layout, device).train()
        contenders[f'plain ({suffix})'] = mmengine_step(
            plain, data, precision, device)
    print(f'\n(1) training iteration, ResNet-{args.depth} at output stride '
          f'16, M={args.num_attentions}, K={args.num_classes}, batch '
          f'{args.batch_size}, {args.image_size} px, SGD step included, '
          f'{args.warmup} warm-up + {args.repeats} timed rounds')
    times, peaks = interleaved(contenders, args.repeats, args.warmup, device)
    report(times, peaks, device)
    for precision, layout in itertools.product(args.precisions, args.layouts):
        suffix = f'{precision}, {layout}'
        print(ratio_line(times, f'mmcal ({suffix})', f'reference ({suffix})'))
        print(ratio_line(times, f'mmcal ({suffix})', f'plain ({suffix})'))
    if 'contiguous' in args.layouts:
        others = [name for name in args.layouts if name != 'contiguous']
        for precision, layout in itertools.product(args.precisions, others):
            print(ratio_line(times, f'mmcal ({precision}, {layout})',
                             f'reference ({precision}, contiguous)'))
    if device.type == 'cuda':
        for suffix, step in mmcal_steps.items():
            check_no_host_sync(step, f'mmcal ({suffix}) step')


def _in_autocast(step, device, precision):
    with autocast(device, precision):
        step()


def benchmark_predict(args, device: torch.device):
    raw, _, _, samples = make_batch(args, device)
    data = dict(inputs=raw, data_samples=samples)
    contenders = {}
    for precision, layout in itertools.product(args.precisions, args.layouts):
        suffix = f'{precision}, {layout}'
        for name, build in (('mmcal', build_mmcal), ('plain', build_plain)):
            torch.manual_seed(0)
            model = build(args, layout, device).eval()
            contenders[f'{name} predict ({suffix})'] = (
                lambda model=model, precision=precision: _predict(
                    model, data, device, precision))
    print(f'\n(2) predict, batch {args.batch_size}, {args.image_size} px; '
          'mmcal with the test views raw + 3 crops, and flipped (8 '
          'images per image)')
    times, peaks = interleaved(contenders, args.repeats, args.warmup, device)
    report(times, peaks, device)
    for precision, layout in itertools.product(args.precisions, args.layouts):
        suffix = f'{precision}, {layout}'
        print(ratio_line(times, f'mmcal predict ({suffix})',
                         f'plain predict ({suffix})'))


def _predict(model, data, device, precision):
    with torch.no_grad(), autocast(device, precision):
        model.test_step(data)


def time_contenders(args, device: torch.device, contenders: dict,
                    *ratios: Tuple[str, str]):
    """Time gradient-free contenders interleaved, report them and print
    each ``(numerator, denominator)`` of ``ratios``."""
    with torch.no_grad():
        times, peaks = interleaved(contenders, args.repeats, args.warmup,
                                   device)
    report(times, peaks, device)
    for numerator, denominator in ratios:
        print(ratio_line(times, numerator, denominator))


def benchmark_crop_drop(args, device: torch.device):
    preprocessor = MODELS.build(
        dict(type='AttentionCropDrop', **IMAGENET_NORM)).to(device)
    generator = torch.Generator().manual_seed(1)
    size, batch = args.crop_image_size, args.crop_batch_size
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    # Peaked, non-negative maps like ReLU attention.
    maps = (torch.rand(batch, 2, 14, 14, generator=generator)**4).to(device)
    crop_maps, drop_maps = maps[:, :1], maps[:, 1:]

    def loop():
        thetas = [[random.uniform(*bounds) for _ in range(batch)]
                  for bounds in ((0.4, 0.6), (0.2, 0.5))]
        _, crops = reference_crop(images, crop_maps, thetas[0], 0.1)
        return torch.cat(
            [crops, reference_drop(images, drop_maps, thetas[1])])

    contenders = {
        'batched augment':
        lambda: preprocessor.augment(images, crop_maps, drop_maps),
        'per-sample loop': loop,
    }
    print(f'\n(3) crop + drop, batch {batch}, {size} px, 14x14 maps')
    time_contenders(args, device, contenders,
                    ('per-sample loop', 'batched augment'))


def benchmark_center_update(args, device: torch.device):
    num_classes, batch = args.num_classes, args.batch_size
    dim = args.num_attentions * channels_of(args.depth)
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(batch, dim, generator=generator).to(device)
    labels = torch.randint(
        0, num_classes, (batch, ), generator=generator).to(device)
    ours, theirs = (torch.zeros(num_classes, dim, device=device)
                    for _ in range(2))
    contenders = {
        'feature_center_update_':
        lambda: feature_center_update_(ours, features, labels, 0.05),
        'reference update':
        lambda: reference_center_update(theirs, features, labels),
    }
    print(f'\n(5) feature-centre update, K={num_classes}, D={dim} '
          f'(M={args.num_attentions}), batch {batch}')
    time_contenders(args, device, contenders,
                    ('feature_center_update_', 'reference update'))


def benchmark_sgd_step(args, device: torch.device):
    fused = 'recipe SGD (fused)'
    builders = {
        fused: ('contiguous',
                lambda model: recipe_optim_wrapper(model).optimizer),
        'reference SGD': ('contiguous', reference_optimizer),
    }
    ratios = [(fused, 'reference SGD')]
    if 'channels_last' in args.layouts:
        # torch's fused SGD copies channels_last weights to the default
        # layout and back.
        builders[f'{fused}, channels_last'] = ('channels_last',
                                               builders[fused][1])
        ratios.append((f'{fused}, channels_last', fused))
    optimizers = {}
    for name, (layout, build) in builders.items():
        torch.manual_seed(0)
        model = build_mmcal(args, layout, device)
        generator = torch.Generator().manual_seed(4)
        for parameter in model.parameters():
            # In the weight's layout, as backward leaves it.
            parameter.grad = torch.empty_like(parameter).copy_(
                torch.randn(parameter.shape, generator=generator))
        optimizers[name] = build(model)
    size = sum(p.numel() for p in model.parameters())
    print(f'\n(6) SGD step alone, lr 1e-3, momentum 0.9, the CAL model\'s '
          f'{size / 1e6:.1f} M weights')
    time_contenders(args, device, {
        name: optimizer.step
        for name, optimizer in optimizers.items()
    }, *ratios)


def benchmark_onnx(args):
    try:
        from mmcal.deployment import ONNXClassifier, export_onnx
    except ImportError as error:
        print(f'\n(4) ONNX prediction skipped: {error} '
              '(pip install -e ".[deploy]")')
        return
    import tempfile
    cal = build_mmcal(args, 'contiguous', torch.device('cpu'))
    cal.eval()
    generator = torch.Generator().manual_seed(2)
    size, batch = args.image_size, args.onnx_batch_size
    images = torch.randint(
        0, 256, (batch, 3, size, size), generator=generator).float()
    all_views = {
        'raw': dict(crops=[], flip=False),
        'test': TEST_VIEWS,
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
            times, _ = interleaved(contenders, args.repeats, args.warmup,
                                   torch.device('cpu'))
    print(f'\n(4) ONNX prediction on the CPU, ResNet-{args.depth}, batch '
          f'{batch}, {size} px, M={args.num_attentions}, '
          f'K={args.num_classes}, fp32; per image')
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


def main(argv=None):
    args = parse_args(argv)
    # init_weights reports every parameter at INFO level.
    MMLogger.get_instance('mmcal_benchmark', log_level='WARNING')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda given but CUDA is not available')
    print(machine_description(device))
    print(f'settings: layouts {args.layouts}, precisions {args.precisions}')
    if 'mixed' in args.layouts:
        check_layout_names(args)
        print('mixed layout: channels_last but for '
              f'{args.contiguous_modules}')
    if 'iteration' not in args.skip:
        benchmark_iteration(args, device)
    if 'predict' not in args.skip:
        benchmark_predict(args, device)
    if 'crop-drop' not in args.skip:
        benchmark_crop_drop(args, device)
    if 'onnx' not in args.skip:
        benchmark_onnx(args)
    if 'centres' not in args.skip:
        benchmark_center_update(args, device)
    if 'sgd' not in args.skip:
        benchmark_sgd_step(args, device)
    print('\nload average after (1, 5, 15 min): %.2f %.2f %.2f' %
          os.getloadavg())


if __name__ == '__main__':
    main()
