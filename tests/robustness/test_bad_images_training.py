"""Training on odd and broken image files with LoadImageSafely."""

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from mmcal_test_utils import (mmengine_warnings, tiny_runner_cfg,
                              write_image_folder)


def safe_loading_cfg(data, work_dir, **load_args):
    cfg = tiny_runner_cfg(data, work_dir, max_epochs=1)
    cfg['val_dataloader'] = cfg['val_cfg'] = cfg['val_evaluator'] = None
    cfg['train_dataloader']['dataset']['pipeline'][0] = dict(
        type='LoadImageSafely', **load_args)
    cfg['experiment_name'] = f'bad_images_{work_dir}'.replace('/', '_')
    return cfg


def test_every_colour_mode_and_size_trains(tmp_path):
    data = write_image_folder(str(tmp_path / 'data'))
    colour = np.asarray(Image.open(f'{data}/class_0/0.png'))
    variants = {
        'class_0/grey.png': Image.fromarray(colour[..., 0]),
        'class_0/rgba.png': Image.fromarray(colour).convert('RGBA'),
        'class_1/palette.png': Image.fromarray(colour).convert('P'),
        'class_1/cmyk.jpg': Image.fromarray(colour).convert('CMYK'),
        'class_2/tiny.png': Image.fromarray(colour[:5, :7]),
        'class_2/large.jpg': Image.fromarray(colour).resize((2400, 1800)),
    }
    for name, image in variants.items():
        image.save(f'{data}/{name}')
    cv2.imwrite(f'{data}/class_2/sixteen_bit.png',
                colour.astype(np.uint16) * 257)
    runner = Runner.from_cfg(
        Config(safe_loading_cfg(data, str(tmp_path / 'w'))))
    runner.train()
    assert len(runner.train_dataloader.dataset) == 19
    assert runner.iter == 5  # every image went through: 19 in batches of 4


def test_broken_image_stops_training_naming_it(tmp_path):
    data = write_image_folder(str(tmp_path / 'data'), per_class=1)
    broken = f'{data}/class_1/broken.jpg'
    with open(broken, 'wb') as file:
        file.write(b'\xff\xd8\xff\xe0 not really a jpeg')
    runner = Runner.from_cfg(
        Config(safe_loading_cfg(data, str(tmp_path / 'w'))))
    with pytest.raises(OSError, match='Cannot read image') as e:
        runner.train()
    assert broken in str(e.value)


def test_opt_in_skips_broken_images_with_a_count(tmp_path):
    data = write_image_folder(str(tmp_path / 'data'))
    for name in ('class_0/empty.png', 'class_2/cut.png'):
        with open(f'{data}/{name}', 'wb') as file:
            file.write(b'' if 'empty' in name else b'\x89PNG\r\n\x1a\n')
    cfg = safe_loading_cfg(data, str(tmp_path / 'w'), skip_broken=True)
    cfg['train_dataloader']['sampler'] = dict(type='DefaultSampler',
                                              shuffle=False)
    runner = Runner.from_cfg(Config(cfg))
    with mmengine_warnings() as messages:
        runner.train()
    assert runner.iter == 4  # 14 samples: the broken two were replaced
    skipped = [m for m in messages if m.startswith('Skipped an image')]
    assert len(skipped) == 2
    assert f'{data}/class_0/empty.png' in skipped[0]
    assert '1 skipped so far' in skipped[0]
    assert f'{data}/class_2/cut.png' in skipped[1]
    assert '2 skipped so far' in skipped[1]
