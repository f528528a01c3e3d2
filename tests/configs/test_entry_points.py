"""Every shipped config through every entry point a user runs: mmcal's
tools, mmpretrain's API and mmpretrain's own tools from the installed
package.

Each config is shrunk only where the CPU needs it (a narrow, shallow
backbone, 32 px, the generated data, one epoch of 2 iterations); its
pipelines, hooks, preprocessor and test views are the shipped ones. It is
trained once through tools/train.py (validation included) and the checkpoint
is shared by the other entry points.
"""
import glob
import json
import os.path as osp
import runpy
import sys

import cv2
import mmpretrain
import pytest
from mmengine.runner import Runner
from mmpretrain.apis import (ImageClassificationInferencer, get_model,
                             inference_model)

from mmcal_test_utils import (StopAfterFirstEpoch, as_own_process,
                              load_tool)
from mmcal.runtime.runner import load_config

from .conftest import all_configs, dataloader_overrides

MM_TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
SIZE = 32
RESNET = dict(depth=18, stem_channels=8, base_channels=8)
RESNET_CHANNELS = 64  # 8 * base_channels out of a basic-block ResNet
SWIN = dict(arch=dict(embed_dims=8, depths=[1, 1, 1, 1],
                      num_heads=[1, 1, 1, 1]),
            window_size=2, pad_small_map=True)
SWIN_CHANNELS = 64  # 8 * embed_dims


def shrink(cfg, data_roots):
    """Overrides: generated data at SIZE px and a tiny backbone."""
    options = dataloader_overrides(cfg, data_roots, size=SIZE)
    model = cfg.model
    options['model.backbone.init_cfg'] = None
    if model.backbone.type == 'SwinTransformer':
        for key, value in SWIN.items():
            options[f'model.backbone.{key}'] = value
        # arch is a name in the config: replaced, not merged.
        options['model.backbone.arch'] = dict(SWIN['arch'], _delete_=True)
        channels = SWIN_CHANNELS
    else:
        for key, value in RESNET.items():
            options[f'model.backbone.{key}'] = value
        channels = RESNET_CHANNELS
    if model.get('neck', {}).get('type') == 'BAPNeck':
        # The head's in_channels follows from the neck's.
        options['model.neck.in_channels'] = channels
    else:
        options['model.head.in_channels'] = channels
    return options


@pytest.fixture(scope='module', params=all_configs())
def trained(request, data_roots, tmp_path_factory):
    """The config, shrunk and dumped; trained one epoch by tools/train.py."""
    root = tmp_path_factory.mktemp(
        osp.splitext(osp.basename(request.param))[0])
    cfg = load_config(request.param)
    cfg.merge_from_dict(shrink(cfg, data_roots))
    cfg.log_level = 'WARNING'
    config = str(root / 'config.py')
    cfg.dump(config)
    work_dir = str(root / 'work')

    build_runner = Runner.from_cfg

    def from_cfg(cfg):
        runner = build_runner(cfg)
        runner.register_hook(StopAfterFirstEpoch())
        return runner

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(Runner, 'from_cfg', from_cfg)
    try:
        run_tool('train.py', config, '--work-dir', work_dir)
    finally:
        monkeypatch.undo()
    images = sorted(glob.glob(osp.join(
        cfg.test_dataloader.dataset.data_root, '*images', '**', '*.*g'),
        recursive=True))[:2]
    json_log, = [log for log in glob.glob(
        osp.join(work_dir, '*', 'vis_data', '*.json'))
        if not log.endswith('scalars.json')]
    return dict(name=request.param, config=config, root=root,
                checkpoint=osp.join(work_dir, 'epoch_1.pth'),
                images=images, json_log=json_log,
                classes=load_config(config).test_dataloader.dataset)


def run_mmpretrain_tool(tool, *argv):
    """mmpretrain's tools/<tool> from the installed package, as a user runs
    it (``python .../tools/<tool> ARGS``), after ``import mmcal``."""
    import mmcal  # noqa: F401
    saved = sys.argv
    sys.argv = [osp.join(MM_TOOLS, tool), *map(str, argv)]
    try:
        with as_own_process():
            runpy.run_path(sys.argv[0], run_name='__main__')
    finally:
        sys.argv = saved


def run_tool(tool, *argv):
    """mmcal's tools/<tool> ``main``, as in a process of its own."""
    with as_own_process():
        return load_tool(tool).main([*map(str, argv)])


def test_test_tool_and_tta(trained):
    for extra in ([], ['--tta']):
        out = str(trained['root'] / f'metrics{len(extra)}.json')
        run_tool('test.py', trained['config'], trained['checkpoint'],
                 '--work-dir', trained['root'] / 'test', '--out', out,
                 '--out-item', 'metrics', *extra)
        with open(out) as file:
            assert 0 <= json.load(file)['accuracy/top1'] <= 100


def test_predict_inferencer_get_model_agree(trained):
    image = trained['images'][0]
    out = str(trained['root'] / 'pred.json')
    run_tool('predict.py', trained['config'], trained['checkpoint'], image,
             '--out', out)
    with open(out) as file:
        top = json.load(file)[0]['predictions'][0]

    model = get_model(trained['config'], pretrained=trained['checkpoint'])
    inferencer = ImageClassificationInferencer(model)
    on_path = inferencer(image)[0]
    on_array = inferencer(cv2.imread(image))[0]
    assert on_path['pred_label'] == on_array['pred_label'] == top['label']
    assert on_path['pred_score'] == pytest.approx(on_array['pred_score'])
    assert on_path['pred_score'] == pytest.approx(top['score'], abs=1e-4)
    by_config = ImageClassificationInferencer(
        trained['config'], pretrained=trained['checkpoint'])(image)[0]
    assert by_config['pred_label'] == top['label']
    # mmpretrain 1.2 picks the inferencer of a model-zoo name only (the
    # README says so): a model built from any config file is refused.
    with pytest.raises(NotImplementedError, match='No available inferencer'):
        inference_model(model, image)


def test_mmpretrain_analysis_tools(trained, monkeypatch):
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    root = trained['root']
    run_mmpretrain_tool('analysis_tools/get_flops.py', trained['config'],
                        '--shape', SIZE)
    run_mmpretrain_tool('analysis_tools/confusion_matrix.py',
                        trained['config'], trained['checkpoint'],
                        '--out', root / 'cm.pkl',
                        '--show-path', root / 'cm.png')
    assert osp.getsize(root / 'cm.png') > 0
    results = str(root / 'results.pkl')
    run_tool('test.py', trained['config'], trained['checkpoint'],
             '--work-dir', root / 'test', '--out', results)
    run_mmpretrain_tool('analysis_tools/analyze_results.py',
                        trained['config'], results, '--out-dir',
                        root / 'analysis')
    run_mmpretrain_tool('analysis_tools/eval_metric.py', results,
                        '--metric', 'type=Accuracy', 'topk=1')
    run_mmpretrain_tool('analysis_tools/analyze_logs.py', 'plot_curve',
                        trained['json_log'], '--keys', 'loss',
                        '--out', root / 'loss.png')
    assert osp.getsize(root / 'loss.png') > 0


def test_mmpretrain_visualization_tools(trained, monkeypatch):
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    root = trained['root']
    run_mmpretrain_tool('visualization/vis_scheduler.py', trained['config'],
                        '--save-path', root / 'lr.png', '--not-show')
    assert osp.getsize(root / 'lr.png') > 0
    for mode in ('original', 'transformed', 'concat', 'pipeline'):
        run_mmpretrain_tool('visualization/browse_dataset.py',
                            trained['config'], '--output-dir',
                            root / mode, '--not-show', '--show-number', 2,
                            '--mode', mode)
        assert len(glob.glob(str(root / mode / '*'))) == 2
    cfg = load_config(trained['config'])
    # The README's target layers: Swin's last norm layer (tokens reshaped
    # to a map by --vit-like), ResNet's last stage.
    target = (['backbone.norm3', '--vit-like']
              if cfg.model.backbone.type == 'SwinTransformer'
              else ['backbone.layer4'])
    run_mmpretrain_tool('visualization/vis_cam.py', trained['images'][0],
                        trained['config'], trained['checkpoint'],
                        '--target-layers', *target,
                        '--save-path', root / 'cam.png')
    # The CAM is drawn on the test pipeline's output: cropped to SIZE, or
    # the image as it is (the synthetic recipes do not resize).
    pipeline = cfg.test_dataloader.dataset.pipeline
    if any('crop_size' in transform for transform in pipeline):
        size = (SIZE, SIZE)
    else:
        size = cv2.imread(trained['images'][0]).shape[:2]
    assert cv2.imread(str(root / 'cam.png')).shape == (*size, 3)
