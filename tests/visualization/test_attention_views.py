"""denormalize and attention_views on the tiny model."""
import numpy as np
import torch

from mmcal.visualization import attention_views, denormalize


def normalized_batch(model, seed=0, size=32):
    """A (2, 3, size, size) BGR uint8 batch and its normalised version."""
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (2, 3, size, size), generator=generator,
                        dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=list(raw)), False)
    return raw, data['inputs']


def test_denormalize_inverts_the_preprocessor(tiny_model):
    raw, inputs = normalized_batch(tiny_model)
    images = denormalize(tiny_model.data_preprocessor, inputs)
    # The preprocessor turns BGR into RGB (to_rgb=True): channels reversed.
    expected = raw.flip(1).permute(0, 2, 3, 1).numpy()
    assert images.dtype == np.uint8 and images.shape == (2, 32, 32, 3)
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1


def test_attention_views_keep_the_global_random_state(tiny_model):
    tiny_model.eval()
    _, inputs = normalized_batch(tiny_model, size=64)
    torch.manual_seed(123)
    views = attention_views(tiny_model, inputs, seed=5)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))

    assert views['attention_maps'].shape == (2, 4, 2, 2)
    assert views['crops'].shape == views['drops'].shape == (2, 64, 64, 3)
    assert np.array_equal(views['images'],
                          denormalize(tiny_model.data_preprocessor, inputs))
    # A dropped pixel is 0 after normalisation: the mean colour on display.
    mean_colour = np.array([124, 116, 104])
    dropped = (np.abs(views['drops'].astype(int) - mean_colour) <= 1).all(-1)
    kept = (views['drops'] == views['images']).all(-1)
    assert (dropped | kept).all()
    assert dropped.any(axis=(1, 2)).all()
    # Same seed, same pictures.
    again = attention_views(tiny_model, inputs, seed=5)
    assert np.array_equal(again['crops'], views['crops'])
    assert np.array_equal(again['drops'], views['drops'])
