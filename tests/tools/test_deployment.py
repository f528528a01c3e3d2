"""tools/deployment: export a trained checkpoint, predict with onnxruntime,
and get the files tools/predict.py writes."""
import json
import os
import os.path as osp
import re
import shutil

import onnx
import pytest
import torch
from mmengine.config import Config

from tiny_training import LIST_ORDER, load_tool, trained_tiny_run

from mmcal_test_utils import tiny_model_cfg, tiny_runner_cfg

from mmcal.runtime import load_checkpoint_file

pytorch2onnx = load_tool('deployment/pytorch2onnx.py')
onnx_predict = load_tool('deployment/onnx_predict.py')
predict = load_tool('predict.py')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


@pytest.fixture(scope='module')
def exported(tiny_run, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('onnx') / 'tiny_cal.onnx')
    pytorch2onnx.main([tiny_run.config, tiny_run.checkpoint, '--out', path])
    return path


def test_export_prints_names_and_shapes(tiny_run, tmp_path, capsys):
    path = str(tmp_path / 'raw.onnx')
    pytorch2onnx.main([tiny_run.config, tiny_run.checkpoint, '--out', path,
                       '--views', 'raw', '--shape', '48', '40'])
    printed = capsys.readouterr().out
    assert "input  images: tensor(float) ['batch', 3, 48, 40]" in printed
    assert "output probabilities: tensor(float) ['batch', 3]" in printed
    assert "views {'crops': [], 'flip': False}" in printed


def test_answer_txt_and_json_equal_pytorch(tiny_run, exported, tmp_path):
    listing = tmp_path / 'testing_img_order.txt'
    listing.write_text('\n'.join(LIST_ORDER) + '\n')
    common = [str(listing), '--img-root', tiny_run.data_root,
              '--batch-size', '2']
    onnx_answer, torch_answer = tmp_path / 'onnx.txt', tmp_path / 'torch.txt'
    onnx_predict.main([tiny_run.config, exported] + common +
                      ['--out', str(onnx_answer)])
    predict.main([tiny_run.config, tiny_run.checkpoint] + common +
                 ['--out', str(torch_answer)])
    assert onnx_answer.read_text() == torch_answer.read_text()
    assert len(onnx_answer.read_text().splitlines()) == len(LIST_ORDER)

    # A folder, scores of all classes.
    outputs = {}
    for name, run in (('onnx', lambda out: onnx_predict.main(
            [tiny_run.config, exported, tiny_run.data_root, '--out', out,
             '--topk', '3'])), ('torch', lambda out: predict.main(
                 [tiny_run.config, tiny_run.checkpoint, tiny_run.data_root,
                  '--out', out, '--topk', '3']))):
        out = str(tmp_path / f'{name}.json')
        run(out)
        with open(out) as file:
            outputs[name] = json.load(file)
    assert len(outputs['onnx']) == 12
    for ours, theirs in zip(outputs['onnx'], outputs['torch']):
        assert ours['file'] == theirs['file']
        assert [p['class'] for p in ours['predictions']] == [
            p['class'] for p in theirs['predictions']]
        for mine, reference in zip(ours['predictions'],
                                   theirs['predictions']):
            assert mine['score'] == pytest.approx(reference['score'],
                                                  abs=1e-4)


def test_image_of_another_size_is_named(tiny_run, tmp_path):
    path = str(tmp_path / 'small.onnx')
    pytorch2onnx.main([tiny_run.config, tiny_run.checkpoint, '--out', path,
                       '--views', 'raw', '--shape', '24', '24'])
    image = osp.join(tiny_run.data_root, 'class_1', '2.png')
    with pytest.raises(ValueError, match=r'2\.png.*\(3, 32, 32\).*'
                       r'\(3, 24, 24\)'):
        onnx_predict.main([tiny_run.config, path, image, '--out',
                           str(tmp_path / 'answer.txt')])
    assert not (tmp_path / 'answer.txt').exists()


def test_export_refuses_a_plain_classifier(tiny_run, tmp_path):
    from mmpretrain.registry import MODELS
    cfg = Config(tiny_runner_cfg(tiny_run.data_root, str(tmp_path)))
    cfg.model = dict(
        type='ImageClassifier',
        backbone=tiny_model_cfg()['backbone'],
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=128))
    cfg.data_preprocessor = tiny_model_cfg()['data_preprocessor']
    config = str(tmp_path / 'plain.py')
    cfg.dump(config)
    checkpoint = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()),
               checkpoint)
    with pytest.raises(TypeError, match='CALClassifier models only'):
        pytorch2onnx.main([config, checkpoint, '--out',
                           str(tmp_path / 'plain.onnx')])
    assert not (tmp_path / 'plain.onnx').exists()


def test_export_without_class_names_says_how_to_name_them(
        tiny_run, tmp_path):
    # A bare state dict (no meta.dataset_meta) and a config whose data set
    # declares no classes leave the graph's metadata without names.
    checkpoint = str(tmp_path / 'bare.pth')
    state_dict = load_checkpoint_file(tiny_run.checkpoint)['state_dict']
    torch.save(dict(state_dict=state_dict), checkpoint)
    out = tmp_path / 'm.onnx'
    with pytest.raises(ValueError, match='No class names .* --cfg-options '
                       'test_dataloader.dataset.classes=FILE'):
        pytorch2onnx.main([tiny_run.config, checkpoint, '--out', str(out)])
    classes = tmp_path / 'classes.txt'
    classes.write_text('only_one\n')
    with pytest.raises(ValueError, match='^1 class names for a model with 3'):
        pytorch2onnx.main([
            tiny_run.config, checkpoint, '--out', str(out), '--cfg-options',
            f'test_dataloader.dataset.classes={classes}'
        ])
    assert not out.exists()


@pytest.mark.parametrize('argv,message', [
    (['--views', 'crops'], "invalid choice: 'crops'"),
    (['--opset', '11'], '--opset must be at least 12'),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        pytorch2onnx.parse_args(['c.py', 'k.pth', '--out', 'm.onnx'] + argv)
    assert message in capsys.readouterr().err


def test_invalid_view_setting_is_refused(tiny_run, tmp_path):
    with pytest.raises(ValueError, match=r'test_cfg\.crops.*1\.5'):
        pytorch2onnx.main([
            tiny_run.config, tiny_run.checkpoint, '--out',
            str(tmp_path / 'm.onnx'), '--cfg-options',
            'model.test_cfg.crops=[[1.5,0.1]]'
        ])


def with_metadata(source, path, **values):
    """A copy of the ONNX file ``source`` with metadata values replaced
    (None: removed)."""
    proto = onnx.load(source)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    metadata.update(values)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        if value is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(proto, path)
    return str(path)


def folder_with_a_broken_image(tiny_run, folder):
    """One good image and one that is not: a check that runs after the
    images are read names the broken one."""
    folder.mkdir()
    shutil.copy(osp.join(tiny_run.data_root, 'class_0', '0.png'),
                folder / 'a.png')
    (folder / 'broken.png').write_bytes(b'not a png')
    return str(folder)


@pytest.mark.parametrize('values,message', [
    (dict(classes=json.dumps([f'class_{i}' for i in range(200)])),
     '200 class names in the metadata for a graph with 3 outputs'),
    (dict(classes='["class_0", "class_1"'),
     r"metadata classes is not JSON \(.*\): '\[\"class_0\", \"class_1\"'"),
    (dict(classes='{"0": "class_0"}'),
     'metadata classes is a dict, not a list of class names'),
    (dict(classes=json.dumps(['a\tb', 'c', 'd'])),
     r"metadata classes\[0\] 'a\\tb' holds the control character '\\t'"),
    (dict(image_size='[24, 24]'),
     r"metadata image_size '\[24, 24\]' is not the \(H, W\) \(32, 32\) of "
     "the graph's input"),
    (dict(image_size='thirty-two'), 'metadata image_size is not JSON'),
    (dict(image_size=None), r"not written by mmcal's pytorch2onnx\.py"),
    (dict(views='{"crops": '), 'metadata views is not JSON'),
])
def test_malformed_metadata_is_named_when_the_file_is_opened(
        tiny_run, exported, tmp_path, values, message):
    model = with_metadata(exported, tmp_path / 'forged.onnx', **values)
    images = folder_with_a_broken_image(tiny_run, tmp_path / 'images')
    out = tmp_path / 'p.json'
    with pytest.raises(ValueError, match=re.escape(model) + '.*' + message):
        onnx_predict.main([tiny_run.config, model, images, '--out',
                           str(out)])
    assert not out.exists()


def test_a_graph_of_another_signature_is_refused(tiny_run, tmp_path):
    shape = ['batch', 3, 32, 32]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node('Identity', ['images'], ['probabilities'])],
        'not_a_classifier',
        [onnx.helper.make_tensor_value_info('images', onnx.TensorProto.FLOAT,
                                            shape)],
        [onnx.helper.make_tensor_value_info('probabilities',
                                            onnx.TensorProto.FLOAT, shape)])
    proto = onnx.helper.make_model(graph)
    entry = proto.metadata_props.add()
    entry.key, entry.value = 'image_size', '[32, 32]'
    model = str(tmp_path / 'identity.onnx')
    onnx.save(proto, model)
    with pytest.raises(ValueError, match=re.escape(
            f"{model} maps ['batch', 3, 32, 32] to ['batch', 3, 32, 32]; "
            "mmcal's export maps (batch, 3, H, W) images to (batch, K)")):
        onnx_predict.main([tiny_run.config, model, tiny_run.data_root,
                           '--out', str(tmp_path / 'p.json')])


def test_class_names_with_spaces_are_refused_for_txt_only(
        tiny_run, exported, tmp_path):
    classes = ['bird 0', 'bird 1', 'bird 2']
    model = with_metadata(exported, tmp_path / 'spaces.onnx',
                          classes=json.dumps(classes))
    images = folder_with_a_broken_image(tiny_run, tmp_path / 'images')
    answer = tmp_path / 'answer.txt'
    with pytest.raises(ValueError, match=r"^Class name 'bird 0' holds ' ': "
                       '.*write CSV or JSON instead'):
        onnx_predict.main([tiny_run.config, model, images, '--out',
                           str(answer)])
    assert not answer.exists()
    os.remove(osp.join(images, 'broken.png'))
    out = tmp_path / 'p.json'
    onnx_predict.main([tiny_run.config, model, images, '--out', str(out),
                       '--topk', '3'])
    with open(out) as file:
        (record, ) = json.load(file)
    assert {p['class'] for p in record['predictions']} == set(classes)


def test_out_that_is_a_folder_is_refused_before_any_work(
        tiny_run, exported, tmp_path, capsys):
    images = folder_with_a_broken_image(tiny_run, tmp_path / 'images')
    with pytest.raises(SystemExit) as stop:
        onnx_predict.main([tiny_run.config, exported, images, '--out',
                           str(tmp_path)])
    assert stop.value.code == 2
    assert f'--out {tmp_path} is a folder' in capsys.readouterr().err
