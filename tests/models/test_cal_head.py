"""CALHead: logits, losses and feature centres against hand computations."""
import math
import os.path as osp

import pytest
import torch
from mmcal_test_utils import tiny_runner_cfg
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmcal.models.heads import feature_center_update_
from mmcal.runtime.checkpoint_loading import load_checkpoint_file

NUM_CLASSES, DIM = 3, 4


def build_head(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='CALHead', num_classes=NUM_CLASSES, in_channels=DIM,
             **kwargs))


def samples(labels):
    return [DataSample().set_gt_label(label) for label in labels]


def cross_entropy(logits, labels):
    """Batch mean of -log softmax, one sample at a time."""
    total = 0.0
    for row, label in zip(logits.tolist(), labels):
        top = max(row)
        log_sum = top + math.log(sum(math.exp(v - top) for v in row))
        total += log_sum - row[label]
    return total / len(labels)


def logits_by_hand(weight, features, scale=100.0):
    return [[scale * sum(w * f for w, f in zip(w_row, f_row))
             for w_row in weight.tolist()] for f_row in features.tolist()]


def center_update_by_hand(centers, features, labels, beta):
    """Per class: c += beta * mean over its samples of (f - c / |c|)."""
    centers = centers.tolist()
    new = [row[:] for row in centers]
    targets = []
    for row in centers:
        norm = math.sqrt(sum(v * v for v in row))
        targets.append([v / max(norm, 1e-12) for v in row])
    for k in range(len(centers)):
        members = [i for i, y in enumerate(labels) if y == k]
        for d in range(len(centers[k])):
            if members:
                mean = sum(features[i][d] - targets[k][d]
                           for i in members) / len(members)
                new[k][d] = centers[k][d] + beta * mean
    return [targets[y] for y in labels], new


def test_centers_start_at_zero_and_are_state():
    head = build_head()
    assert torch.equal(head.feature_centers, torch.zeros(NUM_CLASSES, DIM))
    assert 'feature_centers' in head.state_dict()
    assert head.fc.bias is None
    assert head.fc.weight.shape == (NUM_CLASSES, DIM)


def test_forward_and_effect_logits_by_hand():
    head = build_head()
    features, counterfactual = torch.randn(2, DIM), torch.randn(2, DIM)
    feats = (features, counterfactual, torch.rand(2, 2, 3, 3))
    weight = head.fc.weight.detach()
    raw = logits_by_hand(weight, features)
    fake = logits_by_hand(weight, counterfactual)
    torch.testing.assert_close(head(feats).detach(), torch.tensor(raw))
    effect = [[a - b for a, b in zip(r, f)] for r, f in zip(raw, fake)]
    torch.testing.assert_close(
        head.effect_logits(feats).detach(), torch.tensor(effect), atol=1e-4,
        rtol=1e-5)


def test_feature_center_update_by_hand_with_repeated_label():
    torch.manual_seed(1)
    centers = torch.randn(NUM_CLASSES, DIM)
    centers[2] = 0  # a zero centre normalises to zero
    features = torch.randn(5, DIM)
    labels = [1, 0, 1, 1, 2]  # class 1 three times
    new = centers.clone()
    targets = feature_center_update_(new, features, torch.tensor(labels), 0.05)
    hand_targets, hand_new = center_update_by_hand(centers, features.tolist(),
                                                   labels, 0.05)
    torch.testing.assert_close(targets, torch.tensor(hand_targets))
    torch.testing.assert_close(new, torch.tensor(hand_new))
    # A class absent from the batch keeps its centre.
    labels = torch.tensor([0, 0])
    new = centers.clone()
    feature_center_update_(new, features[:2], labels, 0.05)
    assert torch.equal(new[1:], centers[1:])


def test_single_process_center_update_is_bitwise_the_all_classes_one():
    # One process updates only the batch's rows; the (K, D) computation of
    # distributed training must give the very same bits.
    from mmcal.models.heads.cal_head import _distributed_center_update_
    torch.manual_seed(2)
    centers = torch.randn(NUM_CLASSES, DIM)
    features = torch.randn(7, DIM)
    features[6, 0] = float('nan')  # class 2's update is not finite there
    labels = torch.tensor([1, 0, 1, 1, 0, 1, 2])
    new, all_new = centers.clone(), centers.clone()
    targets = feature_center_update_(new, features, labels, 0.05)
    all_targets = _distributed_center_update_(all_new, features, labels, 0.05)
    assert torch.equal(targets, all_targets)
    assert torch.equal(new, all_new)
    assert torch.equal(new[2, :1], centers[2, :1])


def test_loss_terms_by_hand():
    head = build_head()
    labels = [2, 0, 2]
    features = torch.nn.functional.normalize(torch.randn(3, DIM), dim=1)
    counterfactual = torch.randn(3, DIM)
    aug = torch.randn(6, DIM)
    aug_counterfactual = torch.randn(6, DIM)
    feats = (features.clone().requires_grad_(), counterfactual, None)
    aug_feats = (aug, aug_counterfactual, None)
    losses = head.loss(feats, samples(labels), aug_feats=aug_feats)
    assert set(losses) == {'loss_raw', 'loss_aug', 'loss_effect',
                           'loss_center'}
    weight = head.fc.weight.detach()

    def effect(f, fake):
        return [[a - b for a, b in zip(r, q)] for r, q in zip(
            logits_by_hand(weight, f), logits_by_hand(weight, fake))]

    raw = cross_entropy(torch.tensor(logits_by_hand(weight, features)),
                        labels) / 3
    aug_loss = cross_entropy(torch.tensor(logits_by_hand(weight, aug)),
                             labels * 2) * 2 / 3
    effect_loss = cross_entropy(
        torch.tensor(effect(features, counterfactual) +
                     effect(aug, aug_counterfactual)), labels * 3)
    # Centres start at zero: targets are zero, the loss is sum(f^2) / B.
    center = sum(v * v for row in features.tolist() for v in row) / 3
    for key, value in dict(loss_raw=raw, loss_aug=aug_loss,
                           loss_effect=effect_loss,
                           loss_center=center).items():
        assert losses[key].item() == pytest.approx(value, rel=1e-4), key
    # The update happened: class 2 moved by beta * mean of its two samples,
    # class 1 (absent) did not.
    expected = 0.05 * features[[0, 2]].mean(dim=0)
    torch.testing.assert_close(head.feature_centers[2], expected)
    assert torch.equal(head.feature_centers[1], torch.zeros(DIM))
    # The centre loss reaches the features (they are not detached).
    losses['loss_center'].backward()
    torch.testing.assert_close(feats[0].grad, 2 * features / 3)


def test_second_step_uses_normalised_old_centres():
    head = build_head(loss_weights=dict(center=0.5))
    centers = torch.randn(NUM_CLASSES, DIM)
    head.feature_centers.copy_(centers)
    storage = head.feature_centers.data_ptr()
    labels = [1, 1, 0]
    features = torch.randn(3, DIM)
    losses = head.loss((features, torch.randn(3, DIM), None),
                       samples(labels))
    # Updated in place: no (K, D) copy per step.
    assert head.feature_centers.data_ptr() == storage
    assert 'loss_aug' not in losses
    targets, new = center_update_by_hand(centers, features.tolist(), labels,
                                         0.05)
    center = sum((f - t)**2 for f_row, t_row in zip(features.tolist(), targets)
                 for f, t in zip(f_row, t_row)) / 3
    assert losses['loss_center'].item() == pytest.approx(0.5 * center,
                                                         rel=1e-5)
    torch.testing.assert_close(head.feature_centers, torch.tensor(new))


def test_loss_weights_and_bad_keys():
    head = build_head(loss_weights=dict(effect=0.0, raw=2.0))
    assert head.loss_weights == dict(raw=2.0, aug=2 / 3, effect=0.0,
                                     center=1.0)
    with pytest.raises(ValueError, match="'centre'"):
        build_head(loss_weights=dict(centre=1.0))
    with pytest.raises(ValueError, match='in_channels=4'):
        build_head()((torch.randn(2, 5), torch.randn(2, 5), None))


def test_centers_state_dict_round_trip():
    head = build_head()
    head.loss((torch.randn(3, DIM), torch.randn(3, DIM), None),
              samples([0, 1, 1]))
    assert head.feature_centers.abs().sum() > 0
    restored = build_head()
    restored.load_state_dict(head.state_dict())
    assert torch.equal(restored.feature_centers, head.feature_centers)


def test_centers_saved_in_runner_checkpoint(tmp_path, image_folder):
    cfg = tiny_runner_cfg(image_folder, str(tmp_path / 'work'))
    cfg['val_cfg'] = cfg['val_dataloader'] = cfg['val_evaluator'] = None
    cfg['train_cfg'] = dict(by_epoch=True, max_epochs=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    centers = runner.model.head.feature_centers
    assert centers.abs().sum() > 0
    checkpoint = load_checkpoint_file(
        osp.join(str(tmp_path / 'work'), 'epoch_1.pth'))
    assert torch.equal(checkpoint['state_dict']['head.feature_centers'],
                       centers)
    # And they come back into a fresh model through mmengine's loader.
    cfg.update(work_dir=str(tmp_path / 'work2'), experiment_name='restore')
    fresh = Runner.from_cfg(cfg)
    assert fresh.model.head.feature_centers.abs().sum() == 0
    fresh.load_checkpoint(osp.join(str(tmp_path / 'work'), 'epoch_1.pth'))
    assert torch.equal(fresh.model.head.feature_centers, centers)
