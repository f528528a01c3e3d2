"""Convert a checkpoint of the reference CAL code into an mmcal checkpoint.

The reference (and WS-DAN's PyTorch port) saves ``{'state_dict': ...}``,
keys optionally prefixed ``module.``, and in its resumable file also
``feature_center`` (K, M * C) and ``logs``. Its keys are positional:
``features.0`` conv1, ``features.1`` bn1, ``features.4`` .. ``features.7``
layer1 .. layer4 (torchvision names inside), ``attentions.conv`` /
``attentions.bn`` the attention layer and ``fc`` the bias-free classifier.
The result loads into ``CALClassifier`` (mmpretrain ResNet, ``BAPNeck``,
``CALHead``) with the ResNet depth detected from the keys; anything the
converter does not recognise is refused with the key named.

Example::

    python tools/model_converters/cal_to_mmcal.py model_bestacc.pth \\
        cal_r101_cub_mmcal.pth
    python tools/test.py configs/cal_r101_cub_448.py cal_r101_cub_mmcal.pth
"""
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch
from mmengine.runner.checkpoint import save_checkpoint
from mmpretrain.models.backbones import ResNet
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck

from mmcal.runtime import load_checkpoint_file

# Positions of the backbone's modules in the reference's nn.Sequential.
STEM = {'0': 'conv1', '1': 'bn1'}
STAGES = {'4': 'layer1', '5': 'layer2', '6': 'layer3', '7': 'layer4'}
ATTENTION = {'conv': '0', 'bn': '1'}


class ConversionError(ValueError):
    """A checkpoint this converter does not recognise."""


def reference_state_dict(checkpoint, source: str) -> Dict[str, torch.Tensor]:
    """The model weights of a reference checkpoint, ``module.`` removed."""
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'{source} holds a {type(checkpoint).__name__}, '
                              'not a checkpoint dict')
    state_dict = checkpoint.get('state_dict', checkpoint)
    weights = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(
                f'{source}: {key!r} is not a tensor; expected a dict with '
                "'state_dict' (and optionally 'feature_center', 'logs')")
        weights[re.sub(r'^module\.', '', key)] = value
    return weights


def detect_depth(weights: Dict[str, torch.Tensor]) -> int:
    """ResNet depth from the block type and the block count of each stage."""
    blocks = []
    for position in STAGES:
        indices = {
            key.split('.')[2]
            for key in weights if key.startswith(f'features.{position}.')
        }
        blocks.append(len(indices))
    block = Bottleneck if 'features.4.0.conv3.weight' in weights \
        else BasicBlock
    for depth, (setting_block, setting_blocks) in ResNet.arch_settings.items():
        if setting_block is block and tuple(setting_blocks) == tuple(blocks):
            return depth
    raise ConversionError(
        f'No ResNet has {block.__name__}s in stages of {tuple(blocks)} '
        f'blocks (features.4 .. features.7); known: '
        + ', '.join(f'ResNet-{depth} {b.__name__} {tuple(n)}'
                    for depth, (b, n) in ResNet.arch_settings.items()))


def convert_key(key: str) -> str:
    """mmcal name of one reference key; ConversionError if unknown."""
    parts = key.split('.')
    if parts[0] == 'features' and len(parts) >= 3:
        if parts[1] in STEM and len(parts) == 3:
            return f'backbone.{STEM[parts[1]]}.{parts[2]}'
        if parts[1] in STAGES:
            return '.'.join(['backbone', STAGES[parts[1]], *parts[2:]])
    if parts[0] == 'attentions' and len(parts) == 3 and parts[1] in ATTENTION:
        return f'neck.attention.{ATTENTION[parts[1]]}.{parts[2]}'
    if key == 'fc.weight':
        return 'head.fc.weight'
    raise ConversionError(
        f'Unrecognised key {key!r}: expected features.0/1/4-7.*, '
        'attentions.conv.*, attentions.bn.* or fc.weight')


def convert(checkpoint, source: str = 'checkpoint') -> Tuple[dict, dict]:
    """Convert a loaded reference checkpoint.

    Returns:
        ``(mmcal_checkpoint, model_settings)``: ``{'state_dict', 'meta'}``
        and the config values it needs (``depth``, ``in_channels`` C,
        ``num_attentions`` M, ``num_classes`` K).
    """
    weights = reference_state_dict(checkpoint, source)
    for required in ('attentions.conv.weight', 'fc.weight',
                     'features.0.weight'):
        if required not in weights:
            raise ConversionError(f'{source} has no {required!r}: not a '
                                  'checkpoint of the reference CAL model')
    depth = detect_depth(weights)
    state_dict = OrderedDict(
        (convert_key(key), value) for key, value in weights.items())

    expected = set(ResNet(depth).state_dict())
    converted = {key[len('backbone.'):] for key in state_dict
                 if key.startswith('backbone.')}
    if converted != expected:
        missing, unexpected = expected - converted, converted - expected
        raise ConversionError(
            f'The backbone of {source} does not match ResNet-{depth}: '
            f'missing {sorted(missing)[:5]}, unexpected '
            f'{sorted(unexpected)[:5]}')

    num_attentions, channels = weights['attentions.conv.weight'].shape[:2]
    num_classes, features = weights['fc.weight'].shape
    if features != num_attentions * channels:
        raise ConversionError(
            f"fc.weight has {features} inputs, expected M * C = "
            f'{num_attentions} * {channels} from attentions.conv.weight')
    centers = checkpoint.get('feature_center') if isinstance(
        checkpoint.get('feature_center'), torch.Tensor) else None
    if centers is None:
        # Centres only steer training: fine-tuning restarts them from zero,
        # as the reference does without its resumable file.
        centers = torch.zeros(num_classes, features)
        print(f'{source} has no feature_center: centres start at zero')
    elif tuple(centers.shape) != (num_classes, features):
        raise ConversionError(
            f'feature_center has shape {tuple(centers.shape)}, expected '
            f'(K, M * C) = ({num_classes}, {features})')
    state_dict['head.feature_centers'] = centers.float()

    settings = dict(
        depth=depth,
        in_channels=int(channels),
        num_attentions=int(num_attentions),
        num_classes=int(num_classes))
    meta = dict(converted_from=osp.basename(source), **settings)
    return dict(state_dict=state_dict, meta=meta), settings


def config_overrides(settings: dict) -> str:
    """--cfg-options that fit a config to the converted model."""
    return ' '.join([
        f"model.backbone.depth={settings['depth']}",
        f"model.neck.in_channels={settings['in_channels']}",
        f"model.neck.num_attentions={settings['num_attentions']}",
        f"model.head.num_classes={settings['num_classes']}",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a reference CAL checkpoint to mmcal')
    parser.add_argument('src', help='checkpoint of the reference code')
    parser.add_argument('dst', help='mmcal checkpoint to write')
    args = parser.parse_args(argv)
    try:
        checkpoint, settings = convert(
            load_checkpoint_file(args.src, map_location='cpu'), args.src)
    except ConversionError as error:
        raise SystemExit(f'error: {error}') from None
    save_checkpoint(checkpoint, args.dst)
    print(f'Wrote {args.dst}: ResNet-{settings["depth"]}, '
          f'M={settings["num_attentions"]}, K={settings["num_classes"]}. '
          'configs/cal_r101_cub_448.py fits ResNet-101, M=32, K=200; for '
          f'other values add --cfg-options {config_overrides(settings)}')
    return settings


if __name__ == '__main__':
    main()
