import re

import pytest
import torch
import torch.nn as nn

from mmcal.models.utils import keep_contiguous_format

CL = torch.channels_last


def two_convs():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 5, 3))


def test_named_module_runs_in_the_default_layout_with_the_same_output():
    images = torch.randn(2, 3, 9, 9)
    expected = two_convs()(images)
    model = two_convs().to(memory_format=CL)
    keep_contiguous_format(model, ['1'])
    seen = []
    model[1].register_forward_pre_hook(
        lambda module, args: seen.append(args[0].is_contiguous()))
    output = model(images.contiguous(memory_format=CL))
    assert model[0].weight.is_contiguous(memory_format=CL)
    assert not model[0].weight.is_contiguous()
    assert model[1].weight.is_contiguous()
    # The hook added by keep_contiguous_format ran before the one above.
    assert seen == [True]
    assert output.is_contiguous()
    torch.testing.assert_close(output, expected, rtol=1e-6, atol=1e-6)


def test_the_model_itself_is_not_a_submodule():
    with pytest.raises(ValueError, match=r"names \[''\], which Sequential "
                       r"does not have.*top-level modules: \['0', '1'\]"):
        keep_contiguous_format(two_convs(), [''])


@pytest.mark.parametrize('names', [4, [['1']], ('1', 1)])
def test_names_that_are_not_strings_are_refused_by_value(names):
    with pytest.raises(TypeError, match='contiguous_modules takes module '
                       'names .*, not ' + re.escape(repr(names))):
        keep_contiguous_format(two_convs(), names)
