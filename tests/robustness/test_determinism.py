"""Same seed, deterministic=True: identical losses, CAL's draws included."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmcal_test_utils import tiny_runner_cfg, write_image_folder


@pytest.fixture
def restore_determinism():
    enabled = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(enabled)


class RecordLosses(Hook):

    def __init__(self):
        self.losses = []

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.losses.append({k: v.item() for k, v in outputs.items()})


def train_losses(data, work_dir, seed):
    # 64 px: 2 x 2 attention maps, so crops and drops depend on the draws.
    cfg = tiny_runner_cfg(data, work_dir, max_epochs=1, crop_size=64)
    cfg['val_dataloader'] = cfg['val_cfg'] = cfg['val_evaluator'] = None
    cfg['randomness'] = dict(seed=seed, deterministic=True)
    cfg['experiment_name'] = f'determinism_{work_dir}'.replace('/', '_')
    runner = Runner.from_cfg(Config(cfg))
    recorder = RecordLosses()
    runner.register_hook(recorder)
    runner.train()
    return recorder.losses


def test_same_seed_gives_identical_losses(tmp_path, restore_determinism):
    data = write_image_folder(str(tmp_path / 'data'))
    first = train_losses(data, str(tmp_path / 'a'), seed=3)
    second = train_losses(data, str(tmp_path / 'b'), seed=3)
    assert len(first) == 3
    assert first == second  # exact, every term of every iteration
    other = train_losses(data, str(tmp_path / 'c'), seed=4)
    assert other[0]['loss'] != first[0]['loss']


def test_cal_random_draws_follow_the_torch_seed(tiny_model):
    # Same weights and batch: only the guide-map choice, thresholds and
    # counterfactual maps are random in a training step.
    torch.manual_seed(0)
    # 96 px: 3 x 3 attention maps, so crops and drops depend on the draws.
    inputs = torch.randn(4, 3, 96, 96)
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
    tiny_model.train()

    def losses(seed):
        model = copy.deepcopy(tiny_model)
        torch.manual_seed(seed)
        return {k: v.item() for k, v in model.loss(inputs, samples).items()}

    assert losses(1) == losses(1)
    other = losses(2)
    assert other['loss_aug'] != losses(1)['loss_aug']
    assert other['loss_effect'] != losses(1)['loss_effect']
