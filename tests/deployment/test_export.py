"""The exported graph against PyTorch's predict, views and degenerate
attention included."""
import json
import os.path as osp

import numpy as np
import onnx
import pytest
import torch
from mmcv.transforms import Compose
from mmpretrain.registry import MODELS

from mmcal_test_utils import NUM_CLASSES, PAPER_TEST_VIEWS, tiny_model_cfg

from mmcal.apis import inference_pipeline
from mmcal.deployment import (INPUT_NAME, OUTPUT_NAME, ONNXClassifier,
                              export_onnx, pipeline_image_size, select_views)
from mmcal.models.utils import attention_crop_boxes
from mmcal.runtime.runner import load_config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SIZE = 64
CLASSES = [f'bird {label}' for label in range(NUM_CLASSES)]


def uint8_images(batch, seed):
    """Gray images, each with a 24 px square of noise at a random place:
    the attention peaks there, so the crops zoom in."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.full((batch, 3, SIZE, SIZE), 128, dtype=torch.uint8)
    for image in images:
        top, left = torch.randint(0, SIZE - 24, (2, ), generator=generator)
        image[:, top:top + 24, left:left + 24] = torch.randint(
            0, 256, (3, 24, 24), generator=generator, dtype=torch.uint8)
    return images


GRAY = torch.full((1, 3, SIZE, SIZE), 128, dtype=torch.uint8)
# The gray image first: its attention is all zero (see `model`).
BATCH = torch.cat([GRAY, uint8_images(2, 0)])


def mean_attention(model, images):
    inputs = model.data_preprocessor(dict(inputs=list(images)),
                                     False)['inputs']
    with torch.no_grad():
        return model.get_attention_maps(inputs).mean(dim=1, keepdim=True)


@pytest.fixture(scope='module')
def model():
    """Tiny CAL model with 4x4 attention maps at 64 px (stride-16 last
    stage), the paper's test views, and an attention layer shifted so that
    the gray image's maps are all zero while random images keep peaks."""
    torch.manual_seed(0)
    cfg = tiny_model_cfg(test_cfg=PAPER_TEST_VIEWS)
    cfg['backbone']['strides'] = (1, 2, 2, 1)
    model = MODELS.build(cfg).eval()
    conv, norm = model.neck.attention[:2]
    with torch.no_grad():
        conv.weight.abs_()  # features are >= 0: so are the responses
        norm.running_mean.zero_()
        norm.running_var.fill_(1 - norm.eps)
        norm.weight.fill_(1)
        norm.bias.zero_()
        gray = mean_attention(model, GRAY)
        # Every response of the gray image, and no more, falls below zero.
        norm.bias.fill_(-model.get_attention_maps(
            model.data_preprocessor(dict(inputs=list(GRAY)), False)
            ['inputs']).max().item() * 1.001)
    assert gray.max() > 0
    return model


@pytest.fixture(scope='module')
def exported(model, tmp_path_factory):
    """The ONNX file of each view setting, exported once."""
    files = {}

    def get(name):
        if name not in files:
            path = str(tmp_path_factory.mktemp('onnx') / f'{name}.onnx')
            export_onnx(model, path, (SIZE, SIZE), select_views(model, name),
                        classes=CLASSES)
            files[name] = path
        return files[name]

    return get


def pytorch_scores(model, images, views):
    inputs = model.data_preprocessor(dict(inputs=list(images)),
                                     False)['inputs']
    with torch.no_grad():
        samples = model.predict(inputs, views=views)
    return torch.stack([sample.pred_score for sample in samples]).numpy()


def test_gray_image_has_zero_attention_and_whole_image_crops(model):
    maps = mean_attention(model, BATCH)
    assert torch.equal(maps[0], torch.zeros_like(maps[0]))
    assert (maps[1:].amax(dim=(1, 2, 3)) > 0).all()
    for theta, padding in PAPER_TEST_VIEWS['crops']:
        boxes = attention_crop_boxes(maps, (SIZE, SIZE), theta, padding)
        assert boxes[0].tolist() == [0, 0, SIZE, SIZE]
        # The random images are cropped: the crops are a real test.
        areas = (boxes[1:, 2] - boxes[1:, 0]) * (boxes[1:, 3] - boxes[1:, 1])
        assert (areas < SIZE * SIZE).any()


@pytest.mark.parametrize('views', ['raw', 'val', 'test'])
def test_onnxruntime_equals_predict(model, exported, views):
    classifier = ONNXClassifier(exported(views))
    expected_views = select_views(model, views)
    # Batches of 3 and 1; the export traced 2.
    for images in (BATCH, uint8_images(1, 1)):
        got = classifier(images.float().numpy())
        expected = pytorch_scores(model, images, expected_views)
        assert got.shape == (len(images), NUM_CLASSES)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # The gray image: zero attention, zero features, uniform scores.
    np.testing.assert_allclose(
        classifier(GRAY.float().numpy()), 1 / NUM_CLASSES, atol=1e-6)


def test_a_channels_last_model_exports_with_its_default_layout_stage(
        tmp_path):
    # The export traces the layout conversions (hooks included); ONNX has
    # no layout, so the graph must still compute predict's scores.
    torch.manual_seed(0)
    cfg = tiny_model_cfg(test_cfg=PAPER_TEST_VIEWS,
                         contiguous_modules=['backbone.layer4'])
    cfg['data_preprocessor'].update(type='AttentionCropDrop',
                                    channels_last=True)
    model = MODELS.build(cfg).eval()
    assert model.backbone.layer3[0].conv1.weight.is_contiguous(
        memory_format=torch.channels_last)
    path = str(tmp_path / 'channels_last.onnx')
    export_onnx(model, path, (SIZE, SIZE), PAPER_TEST_VIEWS)
    images = uint8_images(2, 3)
    np.testing.assert_allclose(
        ONNXClassifier(path)(images.float().numpy()),
        pytorch_scores(model, images, PAPER_TEST_VIEWS), atol=1e-4, rtol=0)


def test_views_change_the_scores(exported):
    images = uint8_images(2, 0).float().numpy()
    raw = ONNXClassifier(exported('raw'))(images)
    test = ONNXClassifier(exported('test'))(images)
    assert np.abs(raw - test).max() > 1e-3


def test_graph_names_shapes_and_metadata(exported):
    proto = onnx.load(exported('test'))
    (graph_input, ), (graph_output, ) = proto.graph.input, proto.graph.output
    assert graph_input.name == INPUT_NAME
    assert graph_output.name == OUTPUT_NAME
    dims = [(dim.dim_param or dim.dim_value)
            for dim in graph_input.type.tensor_type.shape.dim]
    assert dims == ['batch', 3, SIZE, SIZE]
    metadata = {entry.key: json.loads(entry.value)
                for entry in proto.metadata_props}
    assert metadata['classes'] == CLASSES
    assert metadata['image_size'] == [SIZE, SIZE]
    assert metadata['views'] == json.loads(json.dumps(PAPER_TEST_VIEWS))
    classifier = ONNXClassifier(exported('test'))
    assert classifier.classes == CLASSES
    assert classifier.image_size == (SIZE, SIZE)


def test_export_refuses_other_models_and_old_opsets(model, tmp_path):
    plain = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=tiny_model_cfg()['backbone'],
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=3, in_channels=128)))
    with pytest.raises(TypeError, match='CALClassifier models only.*'
                       'ImageClassifier'):
        export_onnx(plain, str(tmp_path / 'plain.onnx'), (SIZE, SIZE),
                    dict(crops=[], flip=False))
    with pytest.raises(ValueError, match='opset 11 is too old'):
        export_onnx(model, str(tmp_path / 'old.onnx'), (SIZE, SIZE),
                    dict(crops=[], flip=False), opset=11)
    with pytest.raises(ValueError, match='theta'):
        export_onnx(model, str(tmp_path / 'bad.onnx'), (SIZE, SIZE),
                    dict(crops=[(1.5, 0.1)], flip=False))
    assert not (tmp_path / 'bad.onnx').exists()


def test_pipeline_image_size():
    def pipeline(*transforms):
        with_scope = [dict(type='mmpretrain.LoadImageFromFile'), *transforms,
                      dict(type='mmpretrain.PackInputs')]
        return Compose(with_scope)

    assert pipeline_image_size(
        pipeline(
            dict(type='mmpretrain.ResizeEdge', scale=40, edge='short'),
            dict(type='mmpretrain.CenterCrop', crop_size=(32, 24)))) == (
                24, 32)
    with pytest.raises(ValueError, match='varying size'):
        pipeline_image_size(
            pipeline(
                dict(type='mmpretrain.ResizeEdge', scale=40, edge='short')))


@pytest.mark.parametrize('config,size', [
    ('configs/cal_r152_birds.py', (300, 300)),
    ('configs/cal_r101_cub_448.py', (448, 448)),
    ('configs/cal_r18_synthetic-birds.py', None),
])
def test_pipeline_image_size_of_the_recipes(config, size):
    pipeline = inference_pipeline(load_config(osp.join(REPO_ROOT, config)))
    if size:
        assert pipeline_image_size(pipeline) == size
    else:
        # No resize in the demo's test pipeline: the synthetic birds are
        # all 96 px, exported with --shape 96 96.
        with pytest.raises(ValueError, match='--shape H W'):
            pipeline_image_size(pipeline)
