"""The channels_last switch: same outputs as the default layout, layout kept.

Equality is checked in float64: float32 convolutions sum in another order in
another layout, which the x100 logit scale turns into ~1e-5 relative
differences of the losses, and that is torch's rounding, not ours.
"""
import pytest
import torch
from mmcal_test_utils import PAPER_TEST_VIEWS, tiny_model_cfg, tiny_runner_cfg
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmcal.models.utils import attention_crop_boxes, crop_and_resize

BATCH, SIZE = 4, 64
LABELS = [0, 2, 2, 1]
CL = torch.channels_last
LAST_STAGE = ('backbone.layer4', )


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


def loss_in_both_layouts(seed, record, **channels_last_kwargs):
    """``loss()`` and its backward in float64, in the default layout and
    in channels_last (the model built with ``channels_last_kwargs``), on
    the same batch and random draws.

    Returns:
        ``(losses, what record(model) saw, model)`` of the default layout,
        then the same of channels_last.
    """
    inputs = torch.randn(BATCH, 3, SIZE, SIZE, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(seed))
    results = []
    for channels_last in (False, True):
        kwargs = channels_last_kwargs if channels_last else {}
        model = build(channels_last=channels_last, **kwargs).double().train()
        seen = record(model)
        torch.manual_seed(7)  # the same guide maps, thresholds, fake maps
        batch = inputs.contiguous(memory_format=CL) if channels_last \
            else inputs
        losses = model.loss(batch, samples())
        sum(losses.values()).backward()
        results.append((losses, seen, model))
    return results


def test_training_step_equals_the_default_layout_and_keeps_channels_last():
    (losses, _, default_model), (cl_losses, seen, model) = \
        loss_in_both_layouts(1, record_layouts)
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


@pytest.mark.parametrize('contiguous_modules', [(), LAST_STAGE])
def test_logits_maps_and_predict_views_equal_the_default_layout(
        contiguous_modules):
    inputs = torch.randn(BATCH, 3, SIZE, SIZE, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(2))
    outputs = {}
    for channels_last in (False, True):
        kwargs = dict(contiguous_modules=contiguous_modules) \
            if channels_last else {}
        model = build(channels_last=channels_last, test_cfg=PAPER_TEST_VIEWS,
                      **kwargs).double().eval()
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
    if not contiguous_modules:
        assert all(is_channels_last(t) for t in seen['maps'])


def test_runner_trains_with_the_switch_and_keeps_the_layout(
        tmp_path, image_folder):
    cfg = tiny_runner_cfg(image_folder, str(tmp_path / 'work'))
    # The model's own preprocessor wins over the top-level one (mmengine).
    for preprocessor in (cfg['data_preprocessor'],
                         cfg['model']['data_preprocessor']):
        preprocessor['channels_last'] = True
    cfg['model']['contiguous_modules'] = ['backbone.layer4']
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    assert model.data_preprocessor.channels_last
    # Initialisation, training and checkpoint saving kept the layouts.
    weights = {
        name: p
        for name, p in model.named_parameters()
        if p.dim() == 4 and p.shape[-1] > 1
    }
    assert all(
        p.is_contiguous() if name.startswith('backbone.layer4.') else
        is_channels_last(p) for name, p in weights.items())


def record_conv_input_layouts(model):
    """Per backbone convolution, whether each input it got was
    channels_last."""
    seen = {}
    for name, module in model.backbone.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_pre_hook(
                lambda module, args, name=name: seen.setdefault(
                    name, []).append(is_channels_last(args[0])))
    return seen


def test_contiguous_modules_train_in_the_default_layout_with_equal_losses():
    (losses, _, default_model), (mixed_losses, layouts, model) = \
        loss_in_both_layouts(4, record_conv_input_layouts,
                             contiguous_modules=['backbone.layer4'])
    for key, value in losses.items():
        torch.testing.assert_close(mixed_losses[key], value, rtol=1e-5,
                                   atol=1e-5)
    # Convolution backward sums in another order in another layout, even in
    # float64; entries that nearly cancel differ most, so the tolerance is
    # relative to each gradient's largest entry.
    for (name, param), default in zip(model.named_parameters(),
                                      default_model.parameters()):
        torch.testing.assert_close(
            param.grad, default.grad, rtol=0,
            atol=1e-5 * default.grad.abs().max().item(),
            msg=lambda message, name=name: f'{name}: {message}')
    # Both passes: the last stage's convolutions see default-layout inputs,
    # all the others channels_last ones.
    assert len(layouts) == 20 and all(len(v) == 2 for v in layouts.values())
    for name, seen in layouts.items():
        assert seen == [not name.startswith('layer4.')] * 2, name
    for name, param in model.named_parameters():
        if param.dim() == 4 and param.shape[-1] > 1:
            in_last_stage = name.startswith('backbone.layer4.')
            assert param.is_contiguous() == in_last_stage, name
            assert is_channels_last(param) != in_last_stage, name
            # A gradient in its weight's layout: no re-layout copy on
            # accumulation, and SGD keeps the layout.
            assert param.grad.stride() == param.stride(), name


def test_contiguous_modules_accepts_one_name_as_a_string_and_none():
    model = build(channels_last=True, contiguous_modules='backbone.layer4')
    assert model.backbone.layer4[0].conv1.weight.is_contiguous()
    assert is_channels_last(model.backbone.layer3[0].conv1.weight)
    model = build(channels_last=True, contiguous_modules=None)
    assert is_channels_last(model.backbone.layer4[0].conv1.weight)


def test_contiguous_modules_refuses_unknown_names_and_the_default_layout():
    with pytest.raises(ValueError) as error:
        build(channels_last=True,
              contiguous_modules=['backbone.layer4', 'backbone.layer5'])
    message = str(error.value)
    assert "['backbone.layer5']" in message
    assert "'backbone', 'neck', 'head'" in message
    with pytest.raises(ValueError, match=r"contiguous_modules=\['neck'\] "
                       'only applies to a channels_last model'):
        build(channels_last=False, contiguous_modules=['neck'])
    # One name as a string is named whole, not as a list of its letters.
    with pytest.raises(ValueError, match=r"contiguous_modules="
                       r"'backbone\.layer4' only applies"):
        build(channels_last=False, contiguous_modules='backbone.layer4')
