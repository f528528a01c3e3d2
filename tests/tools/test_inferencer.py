"""mmpretrain's inference API on an mmcal model agrees with the tools."""
import json
import os.path as osp

import mmengine
import pytest
import torch
from mmpretrain.apis import ImageClassificationInferencer, get_model
from tiny_training import load_tool, trained_tiny_run

from mmcal.models import CALClassifier


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    return trained_tiny_run(tmp_path_factory)


def test_inferencer_matches_predict_and_test_tool(tiny_run, tmp_path):
    image = osp.join(tiny_run.data_root, 'class_2', '1.png')

    inferencer = ImageClassificationInferencer(
        tiny_run.config, pretrained=tiny_run.checkpoint)
    assert isinstance(inferencer.model, CALClassifier)
    result = inferencer(image)[0]

    out = str(tmp_path / 'one.json')
    load_tool('predict.py').main(
        [tiny_run.config, tiny_run.checkpoint, image, '--out', out])
    with open(out) as file:
        top = json.load(file)[0]['predictions'][0]
    assert result['pred_class'] == top['class']
    assert result['pred_score'] == pytest.approx(top['score'], abs=1e-5)

    # tools/test.py over the whole set, predictions dumped.
    dump = str(tmp_path / 'pred.pkl')
    load_tool('test.py').main([
        tiny_run.config, tiny_run.checkpoint, '--out', dump, '--work-dir',
        str(tmp_path / 'test_work')
    ])
    tested = {osp.normpath(r['img_path']): r for r in mmengine.load(dump)}
    record = tested[osp.normpath(image)]
    assert int(record['pred_label']) == top['label']
    assert record['pred_score'][top['label']].item() == pytest.approx(
        top['score'], abs=1e-5)
    assert torch.allclose(
        torch.as_tensor(result['pred_scores']), record['pred_score'],
        atol=1e-5)


def test_get_model_loads_the_checkpoint_classes(tiny_run):
    model = get_model(tiny_run.config, pretrained=tiny_run.checkpoint)
    assert isinstance(model, CALClassifier)
    # get_model keeps the checkpoint's dataset meta for the inferencer.
    assert list(model._dataset_meta['classes']) == tiny_run.classes
    assert not model.training
