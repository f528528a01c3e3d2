"""tools/analysis_tools/benchmark.py: contenders comparable, a smoke run,
the README's commands."""
import os.path as osp
import re
import shlex
from collections import Counter

import pytest
import torch
from mmpretrain.models import ResNet
from tiny_training import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/benchmark.py')


def test_reference_and_mmcal_backbones_have_output_stride_16(tool):
    images = torch.randn(1, 3, 64, 64)
    reference = tool.ReferenceCAL(18, 2, 3).eval()
    cfg = tool.backbone_cfg(18)
    assert cfg.pop('type') == 'ResNet'
    backbone = ResNet(**cfg)
    backbone.eval()  # ResNet.train returns None: no chaining
    with torch.no_grad():
        logits, _, features, maps = reference(images)
        ours = backbone(images)[-1]
    assert maps.shape == (1, 2, 4, 4) and ours.shape == (1, 512, 4, 4)
    assert features.shape == (1, 2 * 512) and logits.shape == (1, 3)
    assert reference.feature_center.shape == (3, 2 * 512)


def test_reference_with_mmcal_weights_computes_what_mmcal_computes(tool):
    # The two contenders of the iteration benchmark must do the same work
    # on the same values: with mmcal's weights, the reference network's
    # maps, part features and logits are mmcal's.
    args = tool.parse_args(['--depth', '18', '--num-attentions', '2',
                            '--num-classes', '3'])
    torch.manual_seed(0)
    cal = tool.build_mmcal(args, 'contiguous', torch.device('cpu')).eval()
    reference = tool.ReferenceCAL(18, 2, 3)
    before = reference.fc.weight.clone()
    reference.load_mmcal_weights(cal).eval()
    assert not torch.equal(reference.fc.weight, before)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, _, features, maps = reference(images)
        feats = cal.extract_feat(images)
        ours = cal.head(feats)
    torch.testing.assert_close(maps, feats.attention_maps)
    torch.testing.assert_close(features, feats.part_features)
    torch.testing.assert_close(logits, ours)


HEAVY_CALLS = ('aten::convolution', 'aten::convolution_backward',
               'aten::native_batch_norm', 'aten::native_batch_norm_backward',
               'aten::max_pool2d_with_indices', 'aten::mm', 'aten::bmm')


def heavy_calls(step) -> Counter:
    """(name, input shapes) of each heavy call of one run of ``step``."""
    step()  # warm-up: lazy state (optimizer buffers) is not the step's
    with torch.profiler.profile(record_shapes=True) as profile:
        step()
    return Counter((event.name, str(event.input_shapes))
                   for event in profile.events()
                   if event.name in HEAVY_CALLS)


def test_mmcal_step_makes_the_reference_steps_heavy_calls(tool):
    # The speed comparison rests on both steps doing the same work: every
    # convolution, batch norm, pooling and matrix product, forward and
    # backward, with the same shapes, as often. An extra pass, a view
    # computed twice or a pooling of other shape would show here.
    args = tool.parse_args([
        '--depth', '18', '--image-size', '32', '--batch-size', '3',
        '--num-attentions', '2', '--num-classes', '3'
    ])
    cpu = torch.device('cpu')
    raw, normalised, labels, samples = tool.make_batch(args, cpu)
    cal = tool.build_mmcal(args, 'contiguous', cpu).train()
    reference = tool.ReferenceCAL(18, 2, 3).load_mmcal_weights(cal).train()
    optimizer = torch.optim.SGD(reference.parameters(), lr=1e-3)
    ours = heavy_calls(
        tool.mmengine_step(cal, dict(inputs=raw, data_samples=samples),
                           'fp32', cpu))
    theirs = heavy_calls(
        tool.reference_iteration(reference, normalised, labels, optimizer))
    # ResNet-18: 20 convolutions and batch norms per pass, two passes.
    assert sum(count for (name, _), count in ours.items()
               if name == 'aten::convolution') == 2 * (20 + 1)
    assert ours == theirs


def test_contenders_share_each_layout(tool):
    args = tool.parse_args(['--depth', '18', '--num-attentions', '2',
                            '--num-classes', '3', '--contiguous-modules',
                            'backbone.layer3', 'backbone.layer4'])
    cpu = torch.device('cpu')
    for layout in tool.LAYOUTS:
        cal = tool.build_mmcal(args, layout, cpu)
        models = dict(
            mmcal=cal.backbone,
            plain=tool.build_plain(args, layout, cpu).backbone,
            reference=tool.build_reference(args, layout, cal, cpu).features)
        for name, backbone in models.items():
            for stage in ('layer1', 'layer2', 'layer3', 'layer4'):
                weight = getattr(backbone, stage)[0].conv1.weight
                in_default = layout == 'contiguous' or (
                    layout == 'mixed' and stage in ('layer3', 'layer4'))
                assert weight.is_contiguous() == in_default, (name, layout,
                                                              stage)
                assert weight.is_contiguous(
                    memory_format=torch.channels_last) != in_default


def test_mixed_layout_takes_only_backbone_modules(tool):
    with pytest.raises(SystemExit, match=r"\['neck'\] are not backbone"):
        tool.main(['--contiguous-modules', 'backbone.layer4', 'neck'])


def test_mmcal_trains_with_the_recipe_optimizer_the_reference_with_its_own(
        tool):
    model = torch.nn.Linear(2, 2)
    ours = tool.recipe_optim_wrapper(model).optimizer
    theirs = tool.reference_optimizer(model)
    settings = ('lr', 'momentum', 'weight_decay', 'dampening', 'nesterov')
    assert ({key: ours.defaults[key] for key in settings} ==
            {key: theirs.defaults[key] for key in settings})
    assert ours.defaults['fused'] is True
    assert not theirs.defaults['fused'] and not theirs.defaults['foreach']


def test_smoke_run_prints_every_ratio(tool, capsys):
    tool.main([
        '--depth', '18', '--image-size', '32', '--batch-size', '2',
        '--num-attentions', '2', '--num-classes', '3', '--repeats', '1',
        '--warmup', '0', '--crop-batch-size', '2', '--crop-image-size', '32'
    ])
    out = capsys.readouterr().out
    for line in [
            'torch ', 'load average', 'ResNet-18 at output stride 16',
            'mmcal (fp32, contiguous) / reference (fp32, contiguous): ',
            'mmcal (fp32, channels_last) / plain (fp32, channels_last): ',
            'mmcal (fp32, channels_last) / reference (fp32, contiguous): ',
            'mmcal (fp32, mixed) / reference (fp32, contiguous): ',
            'mmcal (fp32, mixed) / plain (fp32, mixed): ',
            'mmcal predict (fp32, channels_last) / plain predict',
            'mmcal predict (fp32, mixed) / plain predict',
            'per-sample loop / batched augment: ',
            'raw  views: PyTorch', 'test views: PyTorch',
            'feature_center_update_ / reference update: ',
            'recipe SGD (fused) / reference SGD: ',
            'recipe SGD (fused), channels_last / recipe SGD (fused): '
    ]:
        assert line in out, line


def test_ratio_line_gives_medians_and_the_spread_of_rounds(tool):
    times = dict(cal=[2.0, 6.0, 3.0, 8.0, 5.0], ref=[1.0, 2.0, 1.0, 2.0, 1.0])
    # Medians 5 / 1; per-round ratios 2, 3, 3, 4, 5: median 3, quartiles
    # (exclusive method) 2.5 and 4.5.
    assert tool.ratio_line(times, 'cal', 'ref') == (
        '    cal / ref: 5.000 (median of per-round ratios 3.000, '
        'quartiles 2.500 to 4.500)')
    # One round has no spread to show.
    assert tool.ratio_line(dict(cal=[3.0], ref=[2.0]), 'cal', 'ref') == (
        '    cal / ref: 1.500 (median of per-round ratios 1.500)')


def readme_benchmark_commands():
    """The arguments of each benchmark command in the README's Speed block."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    with open(osp.join(root, 'README.md')) as file:
        text = file.read()
    block = re.search(r'```bash\n(.*?)```', text[text.index('### Speed'):],
                      re.S).group(1)
    commands = []
    for line in block.replace('\\\n', ' ').splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[:2] == ['python', 'tools/analysis_tools/benchmark.py']
        commands.append(argv[2:])
    return commands


def test_readme_commands_run_as_written_at_a_tiny_size(tool, capsys):
    commands = readme_benchmark_commands()
    assert len(commands) == 4
    # Appended last, these shrink the model and rounds; every switch the
    # README gives (parts skipped, layouts, precisions, threads) stays.
    tiny = [
        '--depth', '18', '--image-size', '32', '--batch-size', '2',
        '--num-attentions', '2', '--num-classes', '3', '--repeats', '1',
        '--warmup', '0', '--crop-batch-size', '2', '--crop-image-size', '32'
    ]
    ratios = {
        'iteration': 'mmcal (fp32, contiguous) / reference (fp32, contiguous)',
        'predict': 'mmcal predict (fp32, contiguous) / plain predict',
        'crop-drop': 'per-sample loop / batched augment: ',
        'onnx': 'raw  views: PyTorch',
        'centres': 'feature_center_update_ / reference update: ',
        'sgd': 'recipe SGD (fused) / reference SGD: ',
    }
    threads = torch.get_num_threads()
    try:
        for argv in commands:
            args = tool.parse_args(argv)
            if args.device == 'cuda' and not torch.cuda.is_available():
                continue
            tool.main(argv + tiny)
            out = capsys.readouterr().out
            for part, line in ratios.items():
                assert (line in out) == (part not in args.skip), (argv, part)
    finally:
        torch.set_num_threads(threads)
