"""Helpers shared by the tests: a tiny CAL model and a tiny image-folder set.

Imported by name (``from mmcal_test_utils import ...``): pytest puts ``tests/``
on the path, and a module name of its own cannot clash with the ``conftest``
modules of sub-folders.
"""
import contextlib
import importlib.util
import logging
import os
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.utils import ManagerMixin
from PIL import Image

import mmcal  # noqa: F401

torch.set_num_threads(min(2, torch.get_num_threads()))

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The paper's test views, as the configs state them.
PAPER_TEST_VIEWS = Config.fromfile(
    osp.join(ROOT, 'configs', '_base_', 'models',
             'cal_views.py')).cal_test_views

NUM_CLASSES = 3
NUM_ATTENTIONS = 4
# ResNet-18 at a quarter of the width: 128 channels out of the last stage.
BACKBONE_CHANNELS = 128


def tiny_model_cfg(num_classes=NUM_CLASSES, num_attentions=NUM_ATTENTIONS,
                   **classifier_kwargs):
    """Config dict of a narrow ResNet-18 CAL classifier."""
    return dict(
        type='CALClassifier',
        backbone=dict(
            type='ResNet',
            depth=18,
            stem_channels=16,
            base_channels=16,
            out_indices=(3, )),
        neck=dict(
            type='BAPNeck',
            in_channels=BACKBONE_CHANNELS,
            num_attentions=num_attentions),
        head=dict(
            type='CALHead',
            num_classes=num_classes),
        data_preprocessor=dict(
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True),
        **classifier_kwargs)


def write_image_folder(root, num_classes=NUM_CLASSES, per_class=4, size=40,
                       seed=0):
    """Class folders of random PNGs, the layout of mmpretrain's
    CustomDataset; each class has its own mean colour so it can be learnt."""
    rng = np.random.default_rng(seed)
    for label in range(num_classes):
        folder = osp.join(root, f'class_{label}')
        os.makedirs(folder, exist_ok=True)
        for index in range(per_class):
            base = np.full((size, size, 3), 60 * label + 40, dtype=np.float64)
            pixels = base + rng.normal(0, 20, base.shape)
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(
                osp.join(folder, f'{index}.png'))
    return root


def tiny_runner_cfg(data_root, work_dir, max_epochs=1, batch_size=4,
                    crop_size=32):
    """A full runner config training the tiny model on an image folder."""
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(crop_size, crop_size)),
        dict(type='PackInputs'),
    ]
    loader = dict(
        batch_size=batch_size,
        num_workers=0,
        dataset=dict(
            type='CustomDataset', data_root=data_root, pipeline=pipeline),
        sampler=dict(type='DefaultSampler', shuffle=True))
    val_loader = dict(loader, sampler=dict(type='DefaultSampler',
                                           shuffle=False))
    return dict(
        default_scope='mmpretrain',
        model=tiny_model_cfg(),
        data_preprocessor=tiny_model_cfg()['data_preprocessor'] | dict(
            type='AttentionCropDrop'),
        work_dir=work_dir,
        train_dataloader=loader,
        val_dataloader=val_loader,
        test_dataloader=val_loader,
        val_evaluator=dict(type='Accuracy', topk=(1, )),
        test_evaluator=dict(type='Accuracy', topk=(1, )),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        val_cfg=dict(),
        test_cfg=dict(),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=1e-3, momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0),
        log_level='WARNING')


@contextlib.contextmanager
def mmengine_warnings():
    """Collect the messages of warnings logged through mmengine's current
    logger (pytest's caplog does not see it: it does not propagate)."""
    from mmengine.logging import MMLogger
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


class PickledAs:
    """Pickles as the given reduce value: crafts checkpoints that attack
    the loader, with globals and state no honest writer produces."""

    def __init__(self, *value):
        self.value = value

    def __reduce__(self):
        return self.value


def shell_payload(command):
    """The most common payload: ``os.system`` (pickled as posix.system)."""
    return PickledAs(os.system, (command, ))


def object_dtype_scalar():
    """numpy's object dtype with its flags cleared, then a scalar of it: on
    a loader that lets numpy unpickle it, numpy reads the 8 bytes as a
    pointer to a Python object and the process crashes."""
    from numpy._core import multiarray
    dtype = PickledAs(np.dtype, ('O8', False, True),
                      (3, '|', None, None, None, -1, -1, 0))
    return PickledAs(multiarray.scalar, (dtype, b'\x41' * 8))


class StopAfterFirstEpoch(Hook):
    """Ends training after one epoch without touching the schedule (a
    shorter ``max_epochs`` can leave a scheduler with ``begin == end``)."""

    def after_train_epoch(self, runner):
        runner.train_loop.stop_training = True


def load_tool(relative_path: str):
    """Import a script under tools/ as a module."""
    path = osp.join(ROOT, 'tools', relative_path)
    name = 'tool_' + osp.splitext(relative_path)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def as_own_process():
    """Forget the named global instances (loggers, visualizers, message
    hubs) a tool creates, as its own process would.

    mmengine names them after the config file and the second a Runner
    starts: a second tool started in the same second would otherwise get
    the first one's visualizer, whose folder may be gone.
    """
    managed, pending = [], [ManagerMixin]
    while pending:
        cls = pending.pop()
        managed.append(cls)
        pending.extend(cls.__subclasses__())
    before = {cls: set(cls._instance_dict) for cls in managed}
    try:
        yield
    finally:
        for cls, names in before.items():
            for name in set(cls._instance_dict) - names:
                del cls._instance_dict[name]


def write_nabirds_files(root, rows, classes, hierarchy, **replace):
    """The five annotation files of the NABirds layout under ``root``:
    ``rows`` of (image id, path under images/, class id, train flag),
    ``classes`` {class id: name}, ``hierarchy`` {child id: parent id};
    ``replace`` maps a file name (dots as underscores) to the text or bytes
    to write instead."""
    files = {
        'images.txt': ''.join(f'{i} {p}\n' for i, p, _, _ in rows),
        'image_class_labels.txt': ''.join(f'{i} {c}\n'
                                          for i, _, c, _ in rows),
        'train_test_split.txt': ''.join(f'{i} {s}\n' for i, _, _, s in rows),
        'classes.txt': ''.join(f'{k} {n}\n' for k, n in classes.items()),
        'hierarchy.txt': ''.join(f'{c} {p}\n' for c, p in hierarchy.items()),
    }
    for key, content in replace.items():
        files[key.replace('_txt', '.txt')] = content
    os.makedirs(root, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, str):
            content = content.encode()
        with open(osp.join(root, name), 'wb') as file:
            file.write(content)
    return str(root)
