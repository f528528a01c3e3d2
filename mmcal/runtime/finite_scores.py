"""A diverged model is an error, not a 0 % result: the tools check that
the class scores they test, write, draw or export are finite."""
from typing import List, Optional, Sequence

import torch
from mmengine.hooks import Hook

# Images named in an error message, at most.
NAMED_IMAGES = 5


def non_finite_images(scores: torch.Tensor,
                      names: Sequence[str]) -> List[str]:
    """Names of the rows of (N, K) ``scores`` holding a NaN or an
    infinity (one device sync)."""
    finite = torch.isfinite(scores).all(dim=1).tolist()
    return [name for name, ok in zip(names, finite) if not ok]


def listed_images(names: Sequence[str], total: int) -> str:
    """'3 of 8 images (a.png, b.png, c.png)', naming the first few."""
    more = (f' and {len(names) - NAMED_IMAGES} more'
            if len(names) > NAMED_IMAGES else '')
    return (f'{len(names)} of {total} images '
            f'({", ".join(names[:NAMED_IMAGES])}{more})')


def check_finite_scores(scores: torch.Tensor, names: Sequence[str],
                        checkpoint: str) -> None:
    """Refuse the (N, K) ``scores`` of images ``names`` if any is not
    finite.

    Raises:
        FloatingPointError: naming the checkpoint and the images.
    """
    faulty = non_finite_images(scores, names)
    if faulty:
        raise FloatingPointError(
            f'Checkpoint {checkpoint} gives non-finite (NaN or infinite) '
            f'class scores for {listed_images(faulty, len(names))}: the '
            'model has diverged. Retrain it with a lower learning rate '
            '(NonFiniteLossHook stops such a run).')


def sample_scores(samples) -> Optional[torch.Tensor]:
    """(N, K) ``pred_score`` of mmpretrain ``DataSample`` s; None for none
    or for samples without scores (e.g. of retrieval models)."""
    if not samples or not all('pred_score' in sample for sample in samples):
        return None
    return torch.stack([sample.pred_score for sample in samples])


def sample_names(samples, first_index: int) -> List[str]:
    """Image paths of mmpretrain ``DataSample`` s, else their indices."""
    return [
        sample.get('img_path') or f'sample {first_index + index}'
        for index, sample in enumerate(samples)
    ]


class FiniteTestScores(Hook):
    """Stops ``runner.test()`` at the first batch whose scores are not
    finite, naming ``checkpoint``; without it a diverged model tests at
    0 % accuracy with no word of why."""

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint
        self.seen = 0

    def before_test_epoch(self, runner) -> None:
        self.seen = 0

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs=None) -> None:
        samples = list(outputs or [])
        scores = sample_scores(samples)
        names = sample_names(samples, self.seen)
        self.seen += len(samples)
        if scores is not None:
            check_finite_scores(scores, names, self.checkpoint)
