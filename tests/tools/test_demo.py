"""tools/demo.py's pieces (the end-to-end run is the lead's test)."""
import os.path as osp

import pytest

from mmcal.datasets import write_synthetic_birds
from mmcal.runtime.runner import DATALOADERS
from tiny_training import load_tool


@pytest.fixture(scope='module')
def demo():
    return load_tool('demo.py')


def test_options_build_the_stage_configs(demo, tmp_path):
    train_tool = load_tool('train.py')
    options = demo.data_root_options('/some/birds') + \
        demo.backbone_init_options('/ckpts/plain.pth')
    cfg = train_tool.build_config(
        train_tool.parse_args([demo.CAL_CONFIG, '--cfg-options', *options]))
    for loader in DATALOADERS:
        assert cfg[loader].dataset.data_root == '/some/birds'
    assert cfg.model.type == 'CALClassifier'
    assert cfg.data_preprocessor.type == 'AttentionCropDrop'
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint='/ckpts/plain.pth', prefix='backbone.')
    plain = train_tool.build_config(
        train_tool.parse_args([demo.PLAIN_CONFIG]))
    # The plain stage's backbone is the one CAL starts from.
    cal_backbone = dict(cfg.model.backbone)
    cal_backbone.pop('init_cfg')
    assert dict(plain.model.backbone) == cal_backbone


def test_ensure_data_writes_only_when_missing(demo, tmp_path, monkeypatch,
                                              capsys):
    root = str(tmp_path / 'birds')
    write_synthetic_birds(root, num_classes=2, per_class=2, size=32)
    demo.ensure_data(root)
    assert 'Using the synthetic birds' in capsys.readouterr().out
    calls = []
    monkeypatch.setattr('mmcal.datasets.synthetic.writing.'
                        'write_synthetic_birds',
                        lambda path, **spec: calls.append((path, spec)) or
                        dict(train=0, test=0))
    demo.ensure_data(str(tmp_path / 'empty'))
    assert calls == [(str(tmp_path / 'empty'), demo.DEMO_SET)]


def test_test_images_one_per_class_from_the_test_split(demo, tmp_path):
    root = str(tmp_path)
    write_synthetic_birds(root, num_classes=3, per_class=4, size=32,
                          test_fraction=0.5)
    images = demo.test_images(root, 2)
    assert [osp.relpath(p, osp.join(root, 'images')) for p in images] == [
        '001.Species_001/Species_001_0003.jpg',
        '002.Species_002/Species_002_0003.jpg'
    ]
    assert len(demo.test_images(root, 10)) == 3
