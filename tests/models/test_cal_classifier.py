"""CALClassifier: the training step, prediction views and tensor mode."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmcal_test_utils import (BACKBONE_CHANNELS, NUM_ATTENTIONS, NUM_CLASSES,
                              PAPER_TEST_VIEWS, tiny_model_cfg,
                              tiny_runner_cfg)
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmcal.models.necks import BAPOutput
from mmcal.models.utils import sample_crop_drop_maps, sample_guide_maps
from mmcal.testing.reference_ops import reference_crop, reference_drop

BATCH, SIZE = 4, 64
LABELS = [0, 2, 2, 1]


def build(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg(**kwargs))


def samples(labels=LABELS):
    return [DataSample().set_gt_label(label) for label in labels]


def batch(seed=0, size=SIZE):
    return torch.randn(BATCH, 3, size, size,
                       generator=torch.Generator().manual_seed(seed))


def losses_by_hand(model, inputs, labels, seed):
    """CAL's training step written out, drawing the same random numbers."""
    labels = torch.tensor(labels)
    torch.manual_seed(seed)
    features, counterfactual, maps = model.extract_feat(inputs)
    # Guide maps: two draws per sample from sqrt(sum + 1e-6) weights.
    weights = torch.sqrt(maps.detach().sum(dim=(2, 3)) + 1e-6)
    picks = torch.multinomial(weights, 2, replacement=True)
    crop_maps = torch.stack([maps[b, picks[b, 0]] for b in range(BATCH)])
    drop_maps = torch.stack([maps[b, picks[b, 1]] for b in range(BATCH)])
    crop_theta = 0.4 + 0.2 * torch.rand(BATCH)
    drop_theta = 0.2 + 0.3 * torch.rand(BATCH)
    _, crops = reference_crop(inputs, crop_maps[:, None].detach(),
                              crop_theta, 0.1)
    drops = reference_drop(inputs, drop_maps[:, None].detach(), drop_theta)
    aug_features, aug_counterfactual, _ = model.extract_feat(
        torch.cat([crops, drops]))

    def logits(f):
        return 100 * f @ model.head.fc.weight.t()

    raw = logits(features)
    effect = torch.cat([
        raw - logits(counterfactual),
        logits(aug_features) - logits(aug_counterfactual)
    ])
    return dict(
        loss_raw=F.cross_entropy(raw, labels) / 3,
        loss_aug=F.cross_entropy(logits(aug_features), labels.repeat(2)) * 2 /
        3,
        loss_effect=F.cross_entropy(effect, labels.repeat(3)),
        # Centres start at zero, so the targets are zero.
        loss_center=(features**2).sum() / BATCH)


def test_full_loss_equals_the_reference_step():
    model = build().train()
    by_hand_model = copy.deepcopy(model)
    inputs = batch()
    torch.manual_seed(3)
    losses = model.loss(inputs, samples())
    assert set(losses) == {'loss_raw', 'loss_aug', 'loss_effect',
                           'loss_center'}
    expected = losses_by_hand(by_hand_model, inputs, LABELS, seed=3)
    for key, value in expected.items():
        torch.testing.assert_close(
            losses[key], value, rtol=1e-4, atol=1e-5, msg=key)
    total, _ = model.parse_losses(losses)
    torch.testing.assert_close(total, sum(expected.values()), rtol=1e-4,
                               atol=1e-5)
    # The centres moved during the step.
    assert model.head.feature_centers.abs().sum() > 0


def test_gradients_reach_every_part():
    model = build().train()
    torch.manual_seed(1)
    losses = model.loss(batch(), samples())
    sum(losses.values()).backward()
    for name, parameter in [
        ('backbone conv1', model.backbone.conv1.weight),
        ('backbone last stage', model.backbone.layer4[-1].conv2.weight),
        ('attention conv', model.neck.attention[0].weight),
        ('attention bn', model.neck.attention[1].weight),
        ('fc', model.head.fc.weight),
    ]:
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def effect_gradients(model, detach_counterfactual):
    model = copy.deepcopy(model)
    forward = model.neck.forward

    def neck_forward(inputs):
        parts, counterfactual, maps = forward(inputs)
        if detach_counterfactual:
            counterfactual = counterfactual.detach()
        return BAPOutput(parts, counterfactual, maps)

    model.neck.forward = neck_forward
    torch.manual_seed(2)
    model.loss(batch(), samples())['loss_effect'].backward()
    return (model.backbone.conv1.weight.grad.clone(),
            model.head.fc.weight.grad.clone())


def test_counterfactual_branch_contributes_gradient():
    model = build().train()
    backbone, fc = effect_gradients(model, detach_counterfactual=False)
    backbone_cut, fc_cut = effect_gradients(model, detach_counterfactual=True)
    assert backbone.abs().sum() > 0 and fc.abs().sum() > 0
    # Through the counterfactual features (not detached, as in the
    # reference) the effect loss reaches the backbone on a path of its own.
    assert (backbone - backbone_cut).abs().sum() > 1e-3 * backbone.abs().sum()
    # The fc sees f' either way (p' = fc(100 f')): its gradient is the same.
    torch.testing.assert_close(fc, fc_cut)


def test_train_step_updates_parameters_and_logs_every_term():
    model = build()
    optimizer = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    images = [
        torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8)
        for _ in range(BATCH)
    ]
    before = model.neck.attention[0].weight.detach().clone()
    log_vars = model.train_step(
        dict(inputs=images, data_samples=samples()), optimizer)
    for key in ('loss', 'loss_raw', 'loss_aug', 'loss_effect', 'loss_center'):
        assert key in log_vars
    assert not torch.equal(before, model.neck.attention[0].weight)


def view_logits_by_hand(model, inputs, crops):
    """Raw logits of the image and of each crop, one pass per view."""
    features = model.extract_feat(inputs)
    views = [model.head(features)]
    mean_map = features[2].mean(dim=1, keepdim=True)
    for theta, padding in crops:
        _, cropped = reference_crop(inputs, mean_map, [theta] * BATCH,
                                    padding)
        views.append(model.head(model.extract_feat(cropped)))
    return sum(views) / len(views)


def scores_by_hand(model, inputs, crops, flip):
    with torch.no_grad():
        logits = view_logits_by_hand(model, inputs, crops)
        if flip:
            flipped = view_logits_by_hand(model, inputs.flip(-1), crops)
            logits = (logits + flipped) / 2
    return logits.softmax(dim=1)


@pytest.mark.parametrize('views', [
    dict(crops=[], flip=False),
    dict(crops=[(0.1, 0.05)], flip=False),
    dict(crops=[(0.1, 0.05)], flip=True),
    PAPER_TEST_VIEWS,
])
def test_predict_averages_the_views(views):
    model = build().eval()
    inputs = batch(seed=4)
    with torch.no_grad():
        predictions = model.predict(inputs, samples(), views=views)
    scores = torch.stack([p.pred_score for p in predictions])
    expected = scores_by_hand(model, inputs, views['crops'], views['flip'])
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-6)
    assert [int(p.pred_label) for p in predictions] == expected.argmax(
        dim=1).tolist()


def test_val_step_uses_val_cfg_and_test_step_test_cfg():
    model = build(val_cfg=dict(crops=[]), test_cfg=PAPER_TEST_VIEWS).eval()
    assert model.val_cfg == dict(crops=[], flip=False)
    images = [
        torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8)
        for _ in range(BATCH)
    ]
    data = dict(inputs=images, data_samples=samples())
    inputs = model.data_preprocessor(copy.copy(data), False)['inputs']
    with torch.no_grad():
        val = torch.stack([p.pred_score for p in model.val_step(data)])
        test = torch.stack([p.pred_score for p in model.test_step(data)])
        default = torch.stack([p.pred_score for p in model.predict(inputs)])
    torch.testing.assert_close(val, scores_by_hand(model, inputs, [], False))
    expected = scores_by_hand(model, inputs, PAPER_TEST_VIEWS['crops'], True)
    torch.testing.assert_close(test, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(default, expected, rtol=1e-4, atol=1e-6)


def test_default_views_are_the_reference_validation():
    model = build()
    default = dict(crops=[(0.1, 0.05)], flip=False)
    assert model.val_cfg == default and model.test_cfg == default


def test_tensor_mode_and_attention_maps():
    model = build().eval()
    inputs = batch(seed=5)
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
        features = model.extract_feat(inputs)
        maps = model.get_attention_maps(inputs)
    assert logits.shape == (BATCH, NUM_CLASSES)
    torch.testing.assert_close(
        logits, 100 * features[0] @ model.head.fc.weight.t())
    assert maps.shape == (BATCH, NUM_ATTENTIONS, 2, 2)
    torch.testing.assert_close(maps, features[2])


def test_bad_configs_raise():
    with pytest.raises(ValueError, match='test_cfg.*crops'):
        build(test_cfg=dict(crops=[(1.5, 0.1)]))
    with pytest.raises(ValueError, match="val_cfg keys.*'flips'"):
        build(val_cfg=dict(flips=True))
    cfg = tiny_model_cfg()
    cfg['data_preprocessor']['type'] = 'ClsDataPreprocessor'
    with pytest.raises(TypeError, match='AttentionCropDrop'):
        MODELS.build(cfg)


def test_head_in_channels_follow_from_the_neck():
    model = MODELS.build(tiny_model_cfg())
    assert model.head.in_channels == NUM_ATTENTIONS * BACKBONE_CHANNELS
    assert model.head.fc.in_features == NUM_ATTENTIONS * BACKBONE_CHANNELS
    # A head that states the same number is accepted.
    cfg = tiny_model_cfg()
    cfg['head']['in_channels'] = NUM_ATTENTIONS * BACKBONE_CHANNELS
    assert MODELS.build(cfg).head.in_channels == cfg['head']['in_channels']


def test_head_in_channels_disagreeing_with_the_neck_names_both_keys():
    cfg = tiny_model_cfg()
    cfg['head']['in_channels'] = 7
    with pytest.raises(ValueError) as error:
        MODELS.build(cfg)
    message = str(error.value)
    assert 'model.head.in_channels=7' in message
    assert 'model.neck.num_attentions x model.neck.in_channels = ' \
        f'{NUM_ATTENTIONS * BACKBONE_CHANNELS}' in message


def test_neck_output_and_guide_maps_have_names():
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg()).eval()
    inputs = torch.randn(2, 3, 64, 64)
    feats = model.extract_feat(inputs)
    part, counterfactual, maps = feats
    assert feats.part_features is part
    assert feats.counterfactual_features is counterfactual
    assert feats.attention_maps is maps
    torch.manual_seed(1)
    crop_maps, drop_maps = sample_crop_drop_maps(maps)
    torch.manual_seed(1)
    drawn = sample_guide_maps(maps, num_samples=2)
    assert torch.equal(crop_maps, drawn[:, :1])
    assert torch.equal(drop_maps, drawn[:, 1:])


def test_runner_compile_option_trains_like_eager(tmp_path, image_folder):
    # mmengine's compile=... wraps train_step in torch.compile. The CAL
    # step (random draws, crop boxes computed on the device, in-place
    # centre update) must trace and train to the very weights of the eager
    # step. aot_eager runs Dynamo and AOTAutograd without generating C++,
    # which takes minutes on a CPU (the inductor run is measured in the
    # README's Speed section).
    dynamo = pytest.importorskip('torch._dynamo')
    dynamo.reset()
    states = {}
    for name, compile_cfg in (('eager', None),
                              ('compiled', dict(backend='aot_eager'))):
        cfg = Config(tiny_runner_cfg(image_folder, str(tmp_path / name)))
        cfg.merge_from_dict(
            dict(val_cfg=None, val_dataloader=None, val_evaluator=None,
                 train_cfg=dict(by_epoch=True, max_epochs=1)))
        if compile_cfg:
            cfg.compile = compile_cfg
        runner = Runner.from_cfg(cfg)
        runner.train()
        states[name] = runner.model.state_dict()
    compiled_frames = dynamo.utils.counters['stats']['unique_graphs']
    dynamo.reset()
    assert compiled_frames > 0
    assert states['eager']['head.feature_centers'].abs().sum() > 0
    for key, value in states['eager'].items():
        assert torch.equal(states['compiled'][key], value), key
