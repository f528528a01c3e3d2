"""The recipes' ImageNet initialisation maps torchvision's ResNet keys."""
import torch
import torchvision
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmpretrain.registry import MODELS

from mmcal.runtime.runner import load_config

# torchvision's ImageNet classifier: the backbone has no place for it.
TORCHVISION_CLASSIFIER_KEYS = {'fc.weight', 'fc.bias'}


def test_torchvision_resnet152_state_dict_loads_every_backbone_key(
        tmp_path, monkeypatch):
    torch.manual_seed(0)
    state = torchvision.models.resnet152(weights=None).state_dict()
    # Random values everywhere, so that a tensor equal to the file's was
    # loaded from it rather than initialised alike (BatchNorm, zeros).
    state = {
        key: torch.rand_like(value) if value.is_floating_point() else value
        for key, value in state.items()
    }
    path = tmp_path / 'resnet152_torchvision.pth'
    torch.save(state, path)

    cfg = load_config('configs/cal_r152_birds.py')
    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.init_cfg == dict(
        type='Pretrained', checkpoint='torchvision://resnet152')
    backbone_cfg.init_cfg.checkpoint = str(path)
    backbone = MODELS.build(backbone_cfg)

    messages = []
    print_log = mmengine_checkpoint.print_log
    monkeypatch.setattr(
        mmengine_checkpoint, 'print_log',
        lambda msg, *args, **kwargs: (messages.append(str(msg)),
                                      print_log(msg, *args, **kwargs)))
    backbone.init_weights()
    path.unlink()  # 240 MB: not kept among pytest's recent temp folders

    report = '\n'.join(messages)
    assert 'missing keys' not in report
    unexpected = set()
    for line in report.splitlines():
        if line.startswith('unexpected key in source state_dict: '):
            unexpected.update(line.split(': ', 1)[1].split(', '))
    assert unexpected == TORCHVISION_CLASSIFIER_KEYS

    loaded = backbone.state_dict()
    assert set(loaded) == set(state) - TORCHVISION_CLASSIFIER_KEYS
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key


def test_torchvision_checkpoint_names_resolve_without_download():
    urls = mmengine_checkpoint.get_torchvision_models()
    for name in ('resnet152', 'resnet101'):
        assert urls[name].startswith('https://download.pytorch.org/models/')
