"""Training steps on a GPU without host syncs, and under bf16 autocast."""
import pytest
import torch
from mmcal_test_utils import tiny_model_cfg
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

BATCH, SIZE = 4, 64

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')


def model_and_batch(device, channels_last=False):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg()).to(device).train()
    inputs = torch.randn(BATCH, 3, SIZE, SIZE, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([0, 1, 2, 1], device=device)
    samples = [DataSample().set_gt_label(label) for label in labels]
    return model, inputs, samples


def training_step(model, inputs, samples):
    losses = model.loss(inputs, samples)
    total = sum(losses.values())
    total.backward()
    return losses, total


@requires_cuda
def test_training_step_has_no_host_sync():
    model, inputs, samples = model_and_batch('cuda')
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        losses, _ = training_step(model, inputs, samples)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert set(losses) == {'loss_raw', 'loss_aug', 'loss_effect',
                           'loss_center'}
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('device', [
    'cpu', pytest.param('cuda', marks=requires_cuda)
])
def test_bf16_autocast_channels_last_training_and_prediction(device):
    model, inputs, samples = model_and_batch(device, channels_last=True)
    with torch.autocast(device, dtype=torch.bfloat16):
        feats = model.extract_feat(inputs)
        losses, total = training_step(model, inputs, samples)
    # Pooling and centres stay float32 under autocast.
    assert feats[0].dtype == feats[1].dtype == torch.float32
    assert model.head.feature_centers.dtype == torch.float32
    assert torch.isfinite(total)
    assert model.neck.attention[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        predictions = model.predict(
            inputs, samples,
            views=dict(crops=[(0.3, 0.1), (0.1, 0.05)], flip=True))
    scores = torch.stack([p.pred_score for p in predictions]).float()
    assert scores.shape == (BATCH, 3)
    # Softmax scores (in bf16 where autocast keeps the logits in bf16).
    torch.testing.assert_close(
        scores.sum(dim=1), torch.ones(BATCH, device=device), atol=1e-2,
        rtol=0)
