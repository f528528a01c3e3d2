"""tools/analysis_tools/compare_methods.py: its pieces and a smoke run."""
import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS

from mmcal.datasets import write_synthetic_birds
from tiny_training import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/compare_methods.py')


def test_peak_points_of_the_mean_map(tool):
    maps = torch.zeros(2, 2, 3, 3)
    maps[0, 0, 0, 2] = 4.0  # sample 0: peak of the mean at row 0, col 2
    maps[0, 1, 2, 0] = 1.0
    maps[1, 1, 1, 1] = 2.0  # sample 1: peak at the centre
    points = tool.peak_points(maps, (6, 6))
    # Corners aligned: input (0, 2) lands on output (0, 5), (1, 1) on
    # (2.5, 2.5) -> the first maximum among the 4 equal pixels is (2, 2).
    np.testing.assert_array_equal(points, [[5.5, 0.5], [2.5, 2.5]])


def test_points_in_boxes_and_coverage(tool):
    boxes = [np.array([[0, 0, 2, 2], [10, 10, 11, 11]]),
             np.array([[3, 3, 5, 4]])]
    points = np.array([[2.0, 1.5], [5.5, 3.5]])
    assert tool.points_in_boxes(points, boxes).tolist() == [True, False]
    points = np.array([[10.5, 11.0], [4.0, 4.0]])
    assert tool.points_in_boxes(points, boxes).tolist() == [True, True]
    # Pixel centres 0.5 and 1.5 of rows and columns: 4 of 16 pixels.
    assert tool.box_coverage(np.array([[0, 0, 2, 2]]), (4, 4)) == 0.25


def test_mass_in_boxes_by_hand(tool):
    maps = torch.zeros(3, 2, 2, 2)
    # Sample 0: mean [[2, 0], [0, -1]]; corners aligned to 3 x 3 gives
    # [[2, 1, 0], [1, .25, -.5], [0, -.5, -1]], clipped: total 4.25.
    maps[0, 0, 0, 0] = 4.0
    maps[0, 1, 1, 1] = -2.0
    maps[1] = 1.0  # sample 1: uniform
    maps[2] = -1.0  # sample 2: no positive mass
    boxes = [
        # Pixels (row 0, col 0), (1, 0): 2 + 1; (1, 1): 0.25.
        np.array([[0, 0, 1, 2], [1.5, 1.5, 2.5, 2.5]]),
        # Overlapping boxes: 4 + 4 - 1 shared pixel centres of 9.
        np.array([[0, 0, 2, 2], [1, 1, 3, 3]]),
        np.array([[0, 0, 3, 1]]),  # row 0: 3 of 9 pixels
    ]
    shares = tool.mass_in_boxes(maps, boxes, (3, 3))
    np.testing.assert_allclose(shares, [3.25 / 4.25, 7 / 9, 1 / 3])


def test_class_activation_maps_match_a_loop(tool):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18, base_channels=8,
                          stem_channels=8, out_indices=(3, )),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=64)))
    model.eval()
    inputs = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        cams = tool.class_activation_maps(model, inputs, labels)
        features = model.backbone(inputs)[-1]
    assert cams.shape == (2, 1, 2, 2)
    for b in range(2):
        for y in range(2):
            for x in range(2):
                expected = sum(
                    float(model.head.fc.weight[labels[b], c].detach()) *
                    float(features[b, c, y, x]) for c in range(64))
                assert abs(float(cams[b, 0, y, x]) - expected) < 1e-4


def test_load_boxes(tool, tmp_path):
    write_synthetic_birds(str(tmp_path), num_classes=2, per_class=2, size=32)
    boxes = tool.load_boxes(str(tmp_path), 'parts/part_boxes.txt')
    assert len(boxes) == 4
    first = boxes['001.Species_001/Species_001_0001.jpg']
    assert first.shape == (5, 4)
    with open(tmp_path / 'parts' / 'part_boxes.txt') as file:
        x, y, w, h = map(float, file.readline().split()[2:])
    np.testing.assert_allclose(first[0], [x, y, x + w, y + h])
    birds = tool.load_boxes(str(tmp_path), 'bounding_boxes.txt')
    with open(tmp_path / 'bounding_boxes.txt') as file:
        x, y, w, h = map(float, file.readline().split()[1:])
    np.testing.assert_allclose(birds['001.Species_001/Species_001_0001.jpg'],
                               [[x, y, x + w, y + h]])


def test_smoke_run(tool, tmp_path, capsys):
    data_root = tmp_path / 'birds'
    write_synthetic_birds(str(data_root), num_classes=10, per_class=2,
                          size=32, test_fraction=0.5)
    results = tool.main([
        '--data-root', str(data_root), '--work-dir', str(tmp_path / 'work'),
        '--plain-epochs', '2', '--method-epochs', '2'
    ])
    assert list(results) == ['plain, stage 1', 'plain', 'WS-DAN', 'CAL']
    for row in results.values():
        assert 0 <= row['top1'] <= 100 and 0 <= row['peak_in_part'] <= 100
        assert 0 <= row['mass_in_part'] <= 100
        assert 0 < row['chance'] < row['bird_chance'] < 100
    table = capsys.readouterr().out
    assert '| CAL |' in table and '| WS-DAN |' in table
    # The same checkpoints evaluated again, without training: same numbers.
    evaluated = tool.main([
        '--data-root', str(data_root), '--work-dir', str(tmp_path / 'work'),
        '--plain-epochs', '2', '--method-epochs', '2', '--eval-only'
    ])
    for name, row in results.items():
        for key in ('top1', 'peak_in_part', 'mass_in_part', 'mass_in_bird'):
            assert evaluated[name][key] == pytest.approx(row[key], abs=1e-6)


def test_eval_only_without_checkpoints_names_the_folder(tool, tmp_path):
    write_synthetic_birds(str(tmp_path / 'birds'), num_classes=2,
                          per_class=2, size=32)
    with pytest.raises(FileNotFoundError, match='stage1_plain'):
        tool.main(['--data-root', str(tmp_path / 'birds'), '--work-dir',
                   str(tmp_path / 'work'), '--eval-only'])


def test_too_few_epochs_refused(tool):
    with pytest.raises(SystemExit):
        tool.parse_args(['--plain-epochs', '1'])
