"""Feature centres under distributed training (2 CPU processes, gloo)."""
import os
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmcal_test_utils import (tiny_model_cfg, tiny_runner_cfg,
                              write_image_folder)
from mmengine.model import convert_sync_batchnorm
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from mmcal.models.heads import feature_center_update_

WORLD_SIZE = 2


def center_inputs():
    generator = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 6, generator=generator)
    features = torch.randn(8, 6, generator=generator)
    # Class 1 on both ranks, class 2 twice on rank 1, class 3 nowhere.
    labels = torch.tensor([1, 0, 1, 1, 2, 1, 2, 0])
    return centers, features, labels


def train_tiny_runner(rank, data_root, work_dir):
    """A few DDP iterations of the tiny runner config on this rank."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD_SIZE))
    cfg = tiny_runner_cfg(data_root, work_dir, batch_size=2)
    cfg['val_cfg'] = cfg['val_dataloader'] = cfg['val_evaluator'] = None
    cfg['default_hooks']['checkpoint'] = None
    cfg['launcher'] = 'pytorch'
    # CPU modules take no device_ids; without DDP's buffer broadcast only
    # the centres' all-reduce can keep them equal.
    cfg['model_wrapper_cfg'] = dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model.module
    return dict(
        centers=model.head.feature_centers.clone(),
        bn_mean=model.neck.attention[1].running_mean.clone(),
        iters=runner.iter)


def sync_bn_model():
    """mmengine's sync_bn='torch' conversion of the tiny model."""
    model = convert_sync_batchnorm(MODELS.build(tiny_model_cfg()), 'torch')
    batch_norms = [
        m for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    with torch.no_grad():
        logits = model.eval()(torch.randn(2, 3, 32, 32), mode='tensor')
    return dict(
        num_batch_norms=len(batch_norms),
        all_sync=all(
            isinstance(m, torch.nn.SyncBatchNorm) for m in batch_norms),
        attention_bn_eps=model.neck.attention[1].eps,
        logits_shape=tuple(logits.shape))


def worker(rank, out_dir, data_root):
    dist.init_process_group(
        'gloo',
        init_method=f'file://{out_dir}/init',
        rank=rank,
        world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    centers, features, labels = center_inputs()
    half = slice(4 * rank, 4 * rank + 4)
    new_centers = centers.clone()
    targets = feature_center_update_(new_centers, features[half],
                                     labels[half], 0.05)
    result = dict(
        targets=targets,
        centers=new_centers,
        sync_bn=sync_bn_model(),
        ddp=train_tiny_runner(rank, data_root, f'{out_dir}/work'))
    torch.save(result, osp.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def rank_results(tmp_path_factory):
    """Run the 2-process gloo job once; the results of both ranks."""
    out_dir = tmp_path_factory.mktemp('ddp')
    data_root = write_image_folder(str(out_dir / 'data'), per_class=4)
    mp.spawn(
        worker, args=(str(out_dir), data_root), nprocs=WORLD_SIZE, join=True)
    return [torch.load(out_dir / f'rank{r}.pt') for r in range(WORLD_SIZE)]


def test_center_update_equals_single_process_global_batch(rank_results):
    centers, features, labels = center_inputs()
    expected = centers.clone()
    targets = feature_center_update_(expected, features, labels, 0.05)
    # Identical on both ranks and equal to one update on the global batch
    # (class 1, seen on both ranks, moves by the mean of its 4 updates).
    first, second = rank_results
    assert torch.equal(first['centers'], second['centers'])
    torch.testing.assert_close(first['centers'], expected)
    torch.testing.assert_close(first['targets'], targets[:4])
    torch.testing.assert_close(second['targets'], targets[4:])
    assert torch.equal(first['centers'][3], centers[3])
    # Not what a rank alone would compute.
    alone = centers.clone()
    feature_center_update_(alone, features[:4], labels[:4], 0.05)
    assert not torch.allclose(alone, expected)


def test_ddp_training_keeps_centres_identical(rank_results):
    first, second = (result['ddp'] for result in rank_results)
    # 12 images, 2 per rank and step: 3 iterations.
    assert first['iters'] == second['iters'] == 3
    assert first['centers'].abs().sum() > 0
    assert torch.equal(first['centers'], second['centers'])
    # The ranks saw different images: their BN statistics differ.
    assert not torch.equal(first['bn_mean'], second['bn_mean'])


def test_sync_bn_converts_every_batch_norm(rank_results):
    for result in rank_results:
        sync_bn = result['sync_bn']
        assert sync_bn['num_batch_norms'] > 0 and sync_bn['all_sync']
        assert sync_bn['attention_bn_eps'] == 1e-3
        assert sync_bn['logits_shape'] == (2, 3)
