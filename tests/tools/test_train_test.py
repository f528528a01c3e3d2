"""The train/test CLIs end to end on a tiny model: round trip, resume,
errors."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmcal_test_utils import load_tool, tiny_runner_cfg, write_image_folder

from mmcal.runtime import load_checkpoint_file

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def run_tool(name, *args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch of 3 iterations, saved as epoch_1.pth."""
    root = tmp_path_factory.mktemp('roundtrip')
    data = write_image_folder(str(root / 'data'))
    config = str(root / 'tiny_cal.py')
    cfg = tiny_runner_cfg(data, str(root / 'work'), max_epochs=1)
    # No custom_imports: the tools import mmcal themselves.
    Config(cfg).dump(config)
    result = run_tool('train.py', config, '--work-dir', str(root / 'work'))
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(root=root, config=config, work=str(root / 'work'))


def test_checkpoint_has_centres_and_iteration(trained):
    checkpoint = load_checkpoint_file(osp.join(trained['work'], 'epoch_1.pth'))
    assert checkpoint['meta']['iter'] == 3
    centres = checkpoint['state_dict']['head.feature_centers']
    assert centres.shape == (3, 4 * 128)
    assert centres.abs().sum() > 0


def test_test_tool_loads_trained_checkpoint(trained, tmp_path):
    out = str(tmp_path / 'metrics.json')
    result = run_tool('test.py', trained['config'],
                      osp.join(trained['work'], 'epoch_1.pth'), '--work-dir',
                      str(tmp_path), '--out', out, '--out-item', 'metrics')
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out) as file:
        metrics = json.load(file)
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_test_tool_with_flip_tta(trained, tmp_path):
    # --tta wraps the model; the checkpoint must still load strictly into it.
    out = str(tmp_path / 'predictions.pkl')
    # With the README's offline option, which names the unwrapped model.
    result = run_tool('test.py', trained['config'],
                      osp.join(trained['work'], 'epoch_1.pth'), '--tta',
                      '--work-dir', str(tmp_path), '--out', out,
                      '--cfg-options', 'model.backbone.init_cfg=None')
    assert result.returncode == 0, result.stderr[-3000:]
    from mmengine import load
    predictions = load(out)
    assert len(predictions) == 12
    assert torch.allclose(predictions[0]['pred_score'].sum(), torch.tensor(1.))


@pytest.fixture(scope='module')
def trained_with_ema(tmp_path_factory):
    """The tiny run with mmpretrain's EMAHook, whose EMA weights differ
    from the trained ones after its 3 iterations."""
    root = tmp_path_factory.mktemp('ema')
    data = write_image_folder(str(root / 'data'))
    config = str(root / 'tiny_cal_ema.py')
    cfg = tiny_runner_cfg(data, str(root / 'work'), max_epochs=1)
    cfg['custom_hooks'] = [dict(type='EMAHook', momentum=0.5)]
    Config(cfg).dump(config)
    result = run_tool('train.py', config, '--work-dir', str(root / 'work'))
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(config=config, checkpoint=str(root / 'work' / 'epoch_1.pth'))


def scores_with_weights(config, checkpoint, weights, image_paths,
                        flip=False):
    """(N, K) test scores of the images with the model of ``checkpoint``
    given ``weights``; with ``flip`` averaged with those of the mirrored
    images, as flip TTA does."""
    from mmcal.apis import image_loader, inference_pipeline, init_classifier
    model = init_classifier(config, checkpoint)
    model.load_state_dict(weights, strict=True)
    loader = image_loader([(path, path) for path in image_paths],
                          inference_pipeline(model._config), 4)
    scores = []
    with torch.no_grad():
        for batch in loader:
            inputs = model.data_preprocessor(batch, False)['inputs']
            views = [inputs, inputs.flip(-1)] if flip else [inputs]
            scores.append(
                sum(
                    torch.stack([s.pred_score for s in model.predict(view)])
                    for view in views) / len(views))
    return torch.cat(scores)


@pytest.mark.parametrize('tta', [False, True])
def test_test_tool_tests_ema_weights(trained_with_ema, tmp_path, tta):
    """mmengine saves the EMA weights as the checkpoint's state_dict and the
    trained ones under ema_state_dict; the EMA weights are tested."""
    from mmengine import load
    out = str(tmp_path / 'predictions.pkl')
    options = (['--tta', '--cfg-options', 'model.backbone.init_cfg=None']
               if tta else [])
    result = run_tool('test.py', trained_with_ema['config'],
                      trained_with_ema['checkpoint'], '--work-dir',
                      str(tmp_path), '--out', out, *options)
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = load(out)
    tested = torch.stack([p['pred_score'] for p in predictions])
    images = [p['img_path'] for p in predictions]
    saved = load_checkpoint_file(trained_with_ema['checkpoint'])
    ema = saved['state_dict']
    trained = {key[len('module.'):]: value
               for key, value in saved['ema_state_dict'].items()
               if key.startswith('module.')}
    assert trained.keys() == ema.keys()

    def scores(weights):
        return scores_with_weights(trained_with_ema['config'],
                                   trained_with_ema['checkpoint'], weights,
                                   images, flip=tta)

    assert torch.allclose(tested, scores(ema), atol=1e-5)
    assert not torch.allclose(tested, scores(trained), atol=1e-2)


def test_tta_refuses_ema_hook_set_to_test_original_weights(
        trained_with_ema):
    test_tool = load_tool('test.py')
    args = test_tool.parse_args([
        trained_with_ema['config'], trained_with_ema['checkpoint'], '--tta',
        '--cfg-options', 'custom_hooks.0.evaluate_on_origin=True'
    ])
    with pytest.raises(ValueError) as error:
        test_tool.build_config(args)
    assert str(error.value).startswith(
        'custom_hooks: EMAHook is set to test the original weights')
    assert 'test without --tta' in str(error.value)


def test_resume_continues_from_saved_iteration(trained, tmp_path):
    work = str(tmp_path / 'resumed')
    saved = osp.join(trained['work'], 'epoch_1.pth')
    result = run_tool('train.py', trained['config'], '--work-dir', work,
                      '--resume', saved, '--cfg-options',
                      'train_cfg.max_epochs=2', 'log_level=INFO')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 3' in result.stdout + result.stderr
    before = load_checkpoint_file(saved)
    after = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))
    assert after['meta']['iter'] == 6
    # The resumed run kept moving the centres it restored.
    assert not torch.equal(before['state_dict']['head.feature_centers'],
                           after['state_dict']['head.feature_centers'])


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU runs --amp')
def test_amp_without_gpu_is_refused(trained, tmp_path):
    work = str(tmp_path / 'amp')
    with pytest.raises(RuntimeError) as error:
        load_tool('train.py').main(
            [trained['config'], '--amp', '--work-dir', work])
    assert str(error.value).startswith(
        '--amp trains with float16 autocast and loss scaling '
        "(mmengine's AmpOptimWrapper), which needs a CUDA, NPU, MLU or "
        'MUSA device; available devices: cpu.')
    assert not osp.exists(work)


def test_missing_config_is_named(tmp_path):
    result = run_tool('train.py', str(tmp_path / 'no_such_config.py'))
    assert result.returncode != 0
    assert 'Config file not found' in result.stderr
    assert 'no_such_config.py' in result.stderr


def test_missing_checkpoint_is_named(trained, tmp_path):
    result = run_tool('test.py', trained['config'],
                      str(tmp_path / 'missing.pth'))
    assert result.returncode != 0
    assert 'Checkpoint file not found' in result.stderr
    assert 'missing.pth' in result.stderr


def test_checkpoint_of_another_model_is_refused(trained, tmp_path):
    # A plain classifier's checkpoint: no attention layer, no CAL head.
    checkpoint = load_checkpoint_file(osp.join(trained['work'], 'epoch_1.pth'))
    state = {
        key: value
        for key, value in checkpoint['state_dict'].items()
        if key.startswith('backbone.')
    }
    state['head.fc.weight'] = torch.zeros(3, 128)
    state['head.fc.bias'] = torch.zeros(3)
    path = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': state, 'meta': {}}, path)
    result = run_tool('test.py', trained['config'], path, '--work-dir',
                      str(tmp_path))
    assert result.returncode != 0
    assert 'neck.attention.0.weight' in result.stderr
    assert 'head.fc.bias' in result.stderr


def test_two_process_launch_on_cpu_with_validation(trained, tmp_path):
    """tools/dist_train.sh's torchrun launch works on a machine without a
    GPU (gloo), splitting each epoch between the two ranks and validating
    after it."""
    work = str(tmp_path / 'ddp')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port()}', osp.join(ROOT, 'tools', 'train.py'),
         trained['config'], '--work-dir', work, '--launcher', 'pytorch'],
        # mmengine gathers validation results in ./.dist_test.
        cwd=str(tmp_path), capture_output=True, text=True, env=env,
        timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    # 12 images over 2 ranks of batch 4: 2 iterations per epoch.
    assert checkpoint['meta']['iter'] == 2
    scalars, = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as file:
        logged = [json.loads(line) for line in file]
    # One validation over all 12 images (6 per rank), gathered on rank 0.
    top1, = [entry['accuracy/top1'] for entry in logged
             if 'accuracy/top1' in entry]
    assert top1 * 12 / 100 == pytest.approx(round(top1 * 12 / 100))


def test_load_from_restores_trained_weights(trained, tmp_path):
    from mmengine.runner import Runner

    from mmcal.runtime.runner import load_config
    saved = osp.join(trained['work'], 'epoch_1.pth')
    cfg = load_config(trained['config'])
    cfg.work_dir = str(tmp_path)
    cfg.load_from = saved
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    state = load_checkpoint_file(saved)['state_dict']
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, state[key]), key
