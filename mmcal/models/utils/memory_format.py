"""Memory layout of parts of a channels_last model."""
from typing import Sequence, Tuple

import torch
import torch.nn as nn


def _contiguous_inputs(module: nn.Module, args: Tuple) -> Tuple:
    """Forward pre-hook: tensor arguments in the default layout."""
    return tuple(
        arg.contiguous() if isinstance(arg, torch.Tensor) else arg
        for arg in args)


def keep_contiguous_format(model: nn.Module,
                           module_names: Sequence[str]) -> None:
    """Run the named submodules of a channels_last ``model`` in the default
    (contiguous) memory format.

    Their 4-d weights are converted back to the default layout once, and a
    forward pre-hook makes their tensor inputs contiguous on entry. Their
    outputs are contiguous; the modules after them follow their own
    weights' layout.

    On a CPU, torch's channels_last convolution backward copies every
    weight gradient from the default layout into channels_last, and the
    fused SGD step copies channels_last weights to the default layout and
    back. For large kernels at small feature maps (ResNet-50's last stage
    at 7 x 7) these copies cost more than the layout gains.

    Args:
        model: the model, its weights already in channels_last.
        module_names: names as in ``model.named_modules()``, e.g.
            ``'backbone.layer4'``; one name may be given as a string, and
            ``None`` names none.

    Raises:
        TypeError: ``module_names`` is not a name, a list or tuple of names,
            or None.
        ValueError: a name that is not a submodule of ``model``; the error
            names it and the model's top-level modules.
    """
    if isinstance(module_names, str):
        module_names = [module_names]
    # A config may write None for none.
    module_names = module_names or []
    if not (isinstance(module_names, (list, tuple))
            and all(isinstance(name, str) for name in module_names)):
        raise TypeError(
            'contiguous_modules takes module names such as '
            f"['backbone.layer4'], not {module_names!r}")
    modules = dict(model.named_modules())
    del modules['']
    unknown = [name for name in module_names if name not in modules]
    if unknown:
        children = [name for name, _ in model.named_children()]
        raise ValueError(
            f'contiguous_modules names {unknown}, which '
            f'{type(model).__name__} does not have; give names as '
            'model.named_modules() lists them, e.g. \'backbone.layer4\' '
            f'(top-level modules: {children})')
    for name in module_names:
        modules[name].to(memory_format=torch.contiguous_format)
        modules[name].register_forward_pre_hook(_contiguous_inputs)
