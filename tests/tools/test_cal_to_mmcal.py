"""tools/model_converters/cal_to_mmcal.py on reference-layout checkpoints."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
import torchvision
from mmpretrain.registry import MODELS
from tiny_training import ROOT, load_tool

from mmcal_test_utils import tiny_model_cfg
from mmcal.runtime import load_checkpoint_file
from mmcal.runtime.runner import load_config

converter = load_tool('model_converters/cal_to_mmcal.py')

NUM_ATTENTIONS, NUM_CLASSES = 3, 5


def randomize_batch_norms(model, generator):
    """Non-trivial running statistics, so eval-mode BN matters."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(
                torch.randn(channels, generator=generator) * 0.1)
            module.running_var.copy_(
                torch.rand(channels, generator=generator) + 0.5)
            module.weight.data.copy_(
                torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(
                torch.randn(channels, generator=generator) * 0.1)


def reference_checkpoint(resnet, channels, generator, prefix='module.'):
    """The reference's layout: positional backbone, attention, fc, centres."""
    state = {}
    positions = {'conv1': 0, 'bn1': 1, 'layer1': 4, 'layer2': 5,
                 'layer3': 6, 'layer4': 7}
    for key, value in resnet.state_dict().items():
        module, rest = key.split('.', 1)
        if module in positions:
            state[f'features.{positions[module]}.{rest}'] = value
    state['attentions.conv.weight'] = torch.randn(
        NUM_ATTENTIONS, channels, 1, 1, generator=generator) * 0.05
    state['attentions.bn.weight'] = torch.rand(
        NUM_ATTENTIONS, generator=generator) + 0.5
    state['attentions.bn.bias'] = torch.rand(
        NUM_ATTENTIONS, generator=generator) * 0.5
    state['attentions.bn.running_mean'] = torch.randn(
        NUM_ATTENTIONS, generator=generator) * 0.1
    state['attentions.bn.running_var'] = torch.rand(
        NUM_ATTENTIONS, generator=generator) + 0.5
    state['attentions.bn.num_batches_tracked'] = torch.tensor(7)
    state['fc.weight'] = torch.randn(
        NUM_CLASSES, NUM_ATTENTIONS * channels, generator=generator) * 0.01
    return dict(
        state_dict={prefix + key: value for key, value in state.items()},
        feature_center=torch.randn(
            NUM_CLASSES, NUM_ATTENTIONS * channels, generator=generator),
        logs={'epoch': 3, 'val_acc': 41.5})


def independent_logits(resnet, state, inputs):
    """Reference forward written out: features, attention, BAP, fc."""
    features = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(inputs))))
    for layer in (resnet.layer1, resnet.layer2, resnet.layer3,
                  resnet.layer4):
        features = layer(features)
    ref = {key.replace('module.', ''): v for key, v in state.items()}
    attention = F.conv2d(features, ref['attentions.conv.weight'])
    scale = ref['attentions.bn.weight'] / torch.sqrt(
        ref['attentions.bn.running_var'] + 1e-3)
    attention = ((attention - ref['attentions.bn.running_mean'][:, None, None])
                 * scale[:, None, None] +
                 ref['attentions.bn.bias'][:, None, None]).clamp(min=0)
    batch, channels, height, width = features.shape
    pooled = torch.zeros(batch, NUM_ATTENTIONS, channels)
    for m in range(NUM_ATTENTIONS):
        pooled[:, m] = (attention[:, m:m + 1] * features).sum(
            dim=(2, 3)) / (height * width)
    pooled = pooled.reshape(batch, -1)
    pooled = torch.sign(pooled) * torch.sqrt(pooled.abs() + 1e-6)
    pooled = pooled / pooled.norm(dim=1, keepdim=True)
    return (100 * pooled) @ ref['fc.weight'].t()


@pytest.mark.parametrize('depth, channels', [(34, 512), (50, 2048)])
def test_converted_model_reproduces_reference_logits(depth, channels,
                                                     tmp_path):
    generator = torch.Generator().manual_seed(depth)
    torch.manual_seed(depth)
    resnet = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    randomize_batch_norms(resnet, generator)
    resnet.eval()
    reference = reference_checkpoint(resnet, channels, generator)
    src, dst = str(tmp_path / 'ref.pth'), str(tmp_path / 'mmcal.pth')
    torch.save(reference, src)

    settings = converter.main([src, dst])
    assert settings == dict(depth=depth, in_channels=channels,
                            num_attentions=NUM_ATTENTIONS,
                            num_classes=NUM_CLASSES)

    cfg = tiny_model_cfg(num_classes=NUM_CLASSES,
                         num_attentions=NUM_ATTENTIONS)
    cfg['backbone'] = dict(type='ResNet', depth=depth, out_indices=(3, ))
    cfg['neck']['in_channels'] = channels
    model = MODELS.build(cfg).eval()
    converted = load_checkpoint_file(dst)
    result = model.load_state_dict(converted['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.head.feature_centers,
                       reference['feature_center'])

    inputs = torch.randn(2, 3, 64, 64, generator=generator)
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
        expected = independent_logits(resnet, reference['state_dict'], inputs)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.allclose(logits, expected, atol=1e-4), (
        (logits - expected).abs().max())


def test_converted_resnet101_loads_with_the_paper_config(tmp_path):
    generator = torch.Generator().manual_seed(0)
    resnet = torchvision.models.resnet101(weights=None)
    reference = reference_checkpoint(resnet, 2048, generator, prefix='')
    del reference['feature_center']
    src, dst = str(tmp_path / 'ref.pth'), str(tmp_path / 'mmcal.pth')
    torch.save(reference, src)
    converter.main([src, dst])

    cfg = load_config(osp.join(ROOT, 'configs', 'cal_r101_cub_448.py'))
    cfg.model.neck.num_attentions = NUM_ATTENTIONS
    cfg.model.head.num_classes = NUM_CLASSES
    cfg.model.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(cfg.model)
    result = model.load_state_dict(
        load_checkpoint_file(dst)['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # Without feature_center the centres start at zero.
    assert not model.head.feature_centers.any()


@pytest.mark.parametrize('edit, message', [
    (lambda s: s.update({'extra.weight': torch.zeros(1)}), "'extra.weight'"),
    (lambda s: s.pop('features.7.1.conv1.weight'), 'ResNet-34'),
    (lambda s: s.update({'features.7.3.conv1.weight': torch.zeros(1)}),
     r'\(3, 4, 6, 4\)'),
    (lambda s: s.pop('attentions.conv.weight'), "'attentions.conv.weight'"),
])
def test_unrecognised_checkpoints_are_refused(edit, message, tmp_path):
    resnet = torchvision.models.resnet34(weights=None)
    reference = reference_checkpoint(resnet, 512, torch.Generator(),
                                     prefix='')
    edit(reference['state_dict'])
    src = str(tmp_path / 'ref.pth')
    torch.save(reference, src)
    with pytest.raises(SystemExit, match=message):
        converter.main([src, str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()
