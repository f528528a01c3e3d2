"""DatasetCheckHook: bad labels, classes and splits fail before iteration 1."""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmcal_test_utils import (ROOT, load_tool, tiny_runner_cfg,
                              write_image_folder)


@pytest.fixture
def data_root(tmp_path):
    return write_image_folder(str(tmp_path / 'data'))


def checked_runner(cfg):
    cfg = copy.deepcopy(cfg)
    cfg['custom_hooks'] = [dict(type='DatasetCheckHook')]
    cfg['experiment_name'] = str(id(cfg))
    return Runner.from_cfg(Config(cfg))


def with_ann_file(cfg, data_root, lines, loader='train_dataloader'):
    with open(f'{data_root}/{loader}.txt', 'w') as file:
        file.writelines(f'{line}\n' for line in lines)
    cfg[loader] = copy.deepcopy(cfg[loader])
    cfg[loader]['dataset']['ann_file'] = f'{loader}.txt'
    return cfg


def test_label_outside_class_range_is_named(data_root, tmp_path):
    cfg = with_ann_file(
        tiny_runner_cfg(data_root, str(tmp_path / 'work')), data_root,
        ['class_0/0.png 0', 'class_1/0.png 3', 'class_2/0.png -1'])
    runner = checked_runner(cfg)
    with pytest.raises(ValueError, match=r'labels outside \[0, 3\)') as e:
        runner.train()
    message = str(e.value)
    assert 'class_1/0.png): label [3]' in message
    assert 'class_2/0.png): label [-1]' in message
    assert 'class_0/0.png' not in message
    assert 'train_dataloader.txt' in message
    assert runner.iter == 0


def test_validation_labels_are_checked_before_training(data_root, tmp_path):
    cfg = with_ann_file(tiny_runner_cfg(data_root, str(tmp_path / 'work')),
                        data_root, ['class_2/1.png 7'],
                        loader='val_dataloader')
    runner = checked_runner(cfg)
    with pytest.raises(ValueError, match='The val dataset') as e:
        runner.train()
    assert 'class_2/1.png): label [7]' in str(e.value)
    assert runner.iter == 0


def test_class_folder_not_in_class_list_is_named(data_root, tmp_path):
    cfg = tiny_runner_cfg(data_root, str(tmp_path / 'work'))
    cfg['train_dataloader']['dataset']['classes'] = [
        'class_0', 'class_1', 'robin'
    ]
    runner = checked_runner(cfg)
    with pytest.raises(ValueError, match='not in its class list') as e:
        runner.train()
    assert "['class_2']" in str(e.value)
    assert 'robin' in str(e.value)


def test_class_list_in_another_order_is_refused(data_root, tmp_path):
    # Folders are labelled in sorted order: this list would swap labels.
    cfg = tiny_runner_cfg(data_root, str(tmp_path / 'work'))
    cfg['train_dataloader']['dataset']['classes'] = [
        'class_1', 'class_0', 'class_2'
    ]
    with pytest.raises(ValueError, match='orders') as e:
        checked_runner(cfg).train()
    assert "'class_0'" in str(e.value) and "'class_1'" in str(e.value)
    assert "'class_2'" not in str(e.value)


def test_val_classes_in_another_order_than_train_are_named(
        data_root, tmp_path):
    cfg = with_ann_file(tiny_runner_cfg(data_root, str(tmp_path / 'work')),
                        data_root, ['class_0/1.png 1'],
                        loader='val_dataloader')
    cfg['val_dataloader']['dataset']['classes'] = [
        'class_1', 'class_0', 'class_2'
    ]
    with pytest.raises(ValueError, match='The val dataset') as e:
        checked_runner(cfg).train()
    assert ("class 0 is 'class_1' there and 'class_0' in the train "
            'dataset') in str(e.value)


def test_class_count_differing_from_model_is_named(data_root, tmp_path):
    cfg = tiny_runner_cfg(data_root, str(tmp_path / 'work'))
    cfg['model']['head']['num_classes'] = 5
    runner = checked_runner(cfg)
    with pytest.raises(ValueError,
                       match='has 3 classes but the model has '
                       'num_classes=5') as e:
        runner.train()
    assert 'model.head.num_classes=3' in str(e.value)
    assert runner.iter == 0


@pytest.mark.parametrize('serialize_data', [True, False])
def test_empty_split_is_named(data_root, tmp_path, serialize_data):
    # Serialized (mmengine's default), the dataset refuses to build; else
    # the hook finds it.
    cfg = with_ann_file(tiny_runner_cfg(data_root, str(tmp_path / 'work')),
                        data_root, [])
    cfg['train_dataloader']['dataset']['serialize_data'] = serialize_data
    with pytest.raises(ValueError, match='is empty') as e:
        checked_runner(cfg).train()
    assert 'CustomDataset' in str(e.value)
    assert 'train_dataloader.txt' in str(e.value)
    if not serialize_data:
        assert 'The train dataset' in str(e.value)


def test_test_set_is_checked_before_testing(data_root, tmp_path):
    cfg = with_ann_file(tiny_runner_cfg(data_root, str(tmp_path / 'work')),
                        data_root, ['class_0/2.png 0', 'class_0/3.png 9'],
                        loader='test_dataloader')
    with pytest.raises(ValueError, match='The test dataset') as e:
        checked_runner(cfg).test()
    assert 'class_0/3.png): label [9]' in str(e.value)


def test_valid_data_trains(tmp_path):
    # Two classes of two images: one iteration, the checks pass.
    data_root = write_image_folder(str(tmp_path / 'data'),
                                   num_classes=2,
                                   per_class=2)
    cfg = tiny_runner_cfg(data_root, str(tmp_path / 'work'))
    cfg['model']['head']['num_classes'] = 2
    cfg['val_dataloader'] = cfg['val_cfg'] = cfg['val_evaluator'] = None
    runner = checked_runner(cfg)
    runner.train()
    assert runner.iter == 1


def test_runner_without_data_is_left_alone(data_root, tmp_path):
    """mmpretrain's vis_scheduler.py trains over a list with a MagicMock
    dataset to trace the schedule: nothing to check, nothing to refuse."""
    from unittest.mock import MagicMock

    from mmengine.model import BaseModel

    class FakeLoader(list):
        dataset = MagicMock(metainfo=None)

    class Model(BaseModel):

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, *args, **kwargs):
            return dict(loss=self.weight.sum())

        def train_step(self, data, optim_wrapper):
            return dict()

    runner = Runner(
        model=Model(),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=FakeLoader(range(2)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='DatasetCheckHook')],
        default_scope='mmpretrain',
        experiment_name='no_data')
    runner.train()
    assert runner.iter == 2


DEMO_CONFIG = osp.join(ROOT, 'configs', 'cal_r18_synthetic-birds.py')
TRAIN_CLASSES = ['cat', 'dog', 'elk', 'owl', 'wolf']


def write_class_folders(root, names, per_class=2):
    """ImageNet-style ``root/<class>/*.png`` for the given class names."""
    write_image_folder(root, num_classes=len(names), per_class=per_class,
                       size=48)
    for label, name in enumerate(names):
        os.rename(osp.join(root, f'class_{label}'), osp.join(root, name))


def own_data_config(tmp_path, split_classes):
    """The demo config on a user's class folders, as an mmpretrain user
    points a config at them (CustomDataset, one folder per split)."""
    root = tmp_path / 'data'
    for split, names in split_classes.items():
        write_class_folders(str(root / split), names)
    loaders = '\n'.join(
        f'{split}_dataloader = dict(dataset=dict(_delete_=True, '
        f"type='CustomDataset', data_root='{root}', data_prefix='{split}', "
        'pipeline=pipeline))' for split in ('train', 'val', 'test'))
    config = tmp_path / 'own_data.py'
    config.write_text(
        f"_base_ = ['{DEMO_CONFIG}']\n"
        f'model = dict(head=dict(num_classes={len(TRAIN_CLASSES)}))\n'
        "pipeline = [dict(type='LoadImageSafely'), dict(type='PackInputs')]\n"
        f'{loaders}\n')
    return str(config), root


def train(config, work_dir):
    load_tool('train.py').main([
        config, '--work-dir', str(work_dir), '--cfg-options',
        'train_cfg.max_epochs=1'
    ])


def test_val_classes_other_than_train_are_named(tmp_path):
    """Same count, other names: each split numbers its own sorted folders,
    so val's 'fox' would be scored as train's 'owl' and 'owl' as 'wolf'."""
    config, root = own_data_config(
        tmp_path, dict(train=TRAIN_CLASSES,
                       val=['cat', 'dog', 'elk', 'fox', 'owl'],
                       test=TRAIN_CLASSES))
    with pytest.raises(ValueError, match='The val dataset') as error:
        train(config, tmp_path / 'work')
    message = str(error.value)
    assert "classes ['fox'] that the train dataset does not have" in message
    assert "lacks its classes ['wolf']" in message
    assert str(root) in message
    assert not osp.exists(tmp_path / 'work' / 'epoch_1.pth')


def test_val_set_missing_a_class_keeps_num_classes(tmp_path):
    """One val class missing: the model keeps its 5 classes (not the 4 a
    count check would suggest), and the advice given makes the run work;
    a test set of other classes than the checkpoint's is refused too."""
    config, root = own_data_config(
        tmp_path, dict(train=TRAIN_CLASSES, val=['cat', 'dog', 'elk', 'owl'],
                       test=['cat', 'dog', 'elk', 'fox', 'owl']))
    work_dir = tmp_path / 'work'
    with pytest.raises(ValueError, match='The val dataset') as error:
        train(config, work_dir)
    message = str(error.value)
    assert "lacks the classes ['wolf'] of the train dataset" in message
    assert 'Keep model.head.num_classes=5' in message
    empty_folder = osp.join(str(root), 'val', 'wolf')
    assert repr(empty_folder) in message

    os.makedirs(empty_folder)
    train(config, work_dir)
    checkpoint = str(work_dir / 'epoch_1.pth')
    with pytest.raises(ValueError, match='The test dataset') as error:
        load_tool('test.py').main(
            [config, checkpoint, '--work-dir', str(work_dir)])
    message = str(error.value)
    assert "classes ['fox'] that the checkpoint's training set" in message
    assert "lacks its classes ['wolf']" in message
