from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.optim import OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class FiniteLossOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that skips the update when the loss is not finite.

    Before the backward pass it checks the loss; a NaN or infinite loss is
    neither back-propagated nor stepped, so parameters, optimizer state
    (momentum) and feature centres' gradients are untouched by it. With
    gradient accumulation, reaching an update boundary on a skipped batch
    drops the gradients accumulated so far in that window. Distributed, the
    ranks agree (one all-reduce) so that all of them skip together.

    The check costs one device-to-host sync per iteration, before the
    backward pass. Pair it with ``NonFiniteLossHook(action='skip')``, which
    names the skipped iterations and loss terms; the hook alone (action
    ``'raise'``) stops training without this sync.

    Attributes:
        last_step_skipped: whether the latest ``update_params`` skipped.
        num_skipped: number of skipped updates since construction.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_step_skipped = False
        self.num_skipped = 0

    def update_params(self,
                      loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        finite = torch.isfinite(loss.detach()).all().to(torch.float32)
        all_reduce(finite, op='min')
        self.last_step_skipped = not bool(finite.item())
        if not self.last_step_skipped:
            super().update_params(loss, step_kwargs, zero_kwargs)
            return
        self.num_skipped += 1
        # Count the batch as seen so accumulation windows stay aligned.
        self._inner_count += 1
        if self.should_update():
            self.zero_grad(**(zero_kwargs or {}))
