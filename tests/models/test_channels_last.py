"""The channels_last switch: same outputs as the default layout, layout kept.

Equality is checked in float64: float32 convolutions sum in another order in
another layout, which the x100 logit scale turns into ~1e-5 relative
differences of the losses, and that is torch's rounding, not ours.
"""
import torch
from mmcal_test_utils import PAPER_TEST_VIEWS, tiny_model_cfg, tiny_runner_cfg
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmcal.models.utils import attention_crop_boxes, crop_and_resize

BATCH, SIZE = 4, 64
LABELS = [0, 2, 2, 1]
CL = torch.channels_last


def is_channels_last(tensor):
    # A (B, 3, H, W) batch is channels_last and not also contiguous.
    return (tensor.is_contiguous(memory_format=CL)
            and not tensor.is_contiguous())


def build(channels_last, **kwargs):
    torch.manual_seed(0)
    cfg = tiny_model_cfg(**kwargs)
    cfg['data_preprocessor'] = dict(
        cfg['data_preprocessor'], type='AttentionCropDrop',
        channels_last=channels_last)
    return MODELS.build(cfg)


def samples():
    return [DataSample().set_gt_label(label) for label in LABELS]


def uint8_batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), dtype=torch.uint8,
                         generator=generator)


def record_layouts(model):
    """Record the backbone's inputs, features and feature gradients and the
    attention maps of every pass."""
    seen = dict(inputs=[], features=[], feature_grads=[], maps=[])

    def backbone_hook(module, args, output):
        seen['inputs'].append(args[0])
        seen['features'].append(output[-1])
        if output[-1].requires_grad:
            output[-1].register_hook(seen['feature_grads'].append)

    model.backbone.register_forward_hook(backbone_hook)
    model.neck.attention.register_forward_hook(
        lambda module, args, output: seen['maps'].append(output))
    return seen


def test_off_by_default():
    model = build(channels_last=False)
    assert MODELS.build(dict(type='AttentionCropDrop')).channels_last is False
    assert model.backbone.conv1.weight.is_contiguous()
    assert not is_channels_last(model.backbone.conv1.weight)


def test_switch_converts_weights_once_and_emits_channels_last_batches():
    model = build(channels_last=True)
    weights = [p for p in model.parameters() if p.dim() == 4]
    assert weights and all(is_channels_last(p) for p in weights
                           if p.shape[-1] > 1)
    assert all(p.is_contiguous(memory_format=CL) for p in weights)
    data = dict(inputs=uint8_batch(), data_samples=samples())
    inputs = model.data_preprocessor(dict(data), True)['inputs']
    default = build(channels_last=False).data_preprocessor(dict(data), True)
    assert is_channels_last(inputs)
    assert torch.equal(inputs, default['inputs'])


def test_crop_of_a_channels_last_batch_is_the_same_and_channels_last():
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(BATCH, 3, 40, 48, generator=generator)
    maps = torch.rand(BATCH, 1, 5, 6, generator=generator)**3
    boxes = attention_crop_boxes(maps, (40, 48), 0.4, 0.1)
    crops = crop_and_resize(images.contiguous(memory_format=CL), boxes)
    assert is_channels_last(crops)
    torch.testing.assert_close(
        crops, crop_and_resize(images, boxes), rtol=0, atol=0)


def test_training_step_equals_the_default_layout_and_keeps_channels_last():
    inputs = torch.randn(BATCH, 3, SIZE, SIZE, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(1))
    results = {}
    for channels_last in (False, True):
        model = build(channels_last=channels_last).double().train()
        seen = record_layouts(model)
        torch.manual_seed(7)  # the same guide maps, thresholds, fake maps
        batch = inputs.contiguous(memory_format=CL) if channels_last \
            else inputs
        losses = model.loss(batch, samples())
        sum(losses.values()).backward()
        results[channels_last] = (losses, seen, model)
    (losses, _, default_model), (cl_losses, seen, model) = (results[False],
                                                            results[True])
    for key, value in losses.items():
        torch.testing.assert_close(cl_losses[key], value, rtol=1e-5,
                                   atol=1e-5)
    torch.testing.assert_close(
        model.head.feature_centers, default_model.head.feature_centers,
        rtol=1e-5, atol=1e-5)
    # Two passes: the raw batch, then crops + drops; and their gradients.
    assert len(seen['inputs']) == len(seen['feature_grads']) == 2
    for name in ('inputs', 'features', 'feature_grads', 'maps'):
        assert all(is_channels_last(t) for t in seen[name]), name
    # Gradients keep the weights' layout, so SGD keeps it too.
    assert all(is_channels_last(p.grad) for p in model.parameters()
               if p.dim() == 4 and p.shape[-1] > 1)


def test_logits_maps_and_predict_views_equal_the_default_layout():
    inputs = torch.randn(BATCH, 3, SIZE, SIZE, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(2))
    outputs = {}
    for channels_last in (False, True):
        model = build(channels_last=channels_last,
                      test_cfg=PAPER_TEST_VIEWS).double().eval()
        seen = record_layouts(model)
        batch = inputs.contiguous(memory_format=CL) if channels_last \
            else inputs
        with torch.no_grad():
            logits = model(batch, mode='tensor')
            maps = model.get_attention_maps(batch)
            scores = torch.stack(
                [p.pred_score for p in model.predict(batch, samples())])
        outputs[channels_last] = (logits, maps, scores, seen)
    for default, other in zip(outputs[False][:3], outputs[True][:3]):
        torch.testing.assert_close(other, default, rtol=1e-5, atol=1e-5)
    seen = outputs[True][3]
    # tensor mode, the maps, then predict's raw, crops, flipped, flipped
    # crops: every view reaches the backbone in channels_last.
    assert len(seen['inputs']) == 6
    assert all(is_channels_last(t) for t in seen['inputs'])
    assert all(is_channels_last(t) for t in seen['maps'])


def test_runner_trains_with_the_switch_and_keeps_the_layout(
        tmp_path, image_folder):
    cfg = tiny_runner_cfg(image_folder, str(tmp_path / 'work'))
    # The model's own preprocessor wins over the top-level one (mmengine).
    for preprocessor in (cfg['data_preprocessor'],
                         cfg['model']['data_preprocessor']):
        preprocessor['channels_last'] = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    assert model.data_preprocessor.channels_last
    # Initialisation, training and checkpoint saving kept the layout.
    assert all(is_channels_last(p) for p in model.parameters()
               if p.dim() == 4 and p.shape[-1] > 1)
