"""The compiled RepMLP block's reassembly runs in partition order: no index divisions in the
generated code (they are there without the pass), the same results."""
import pytest
import torch
from torch._inductor.utils import run_and_get_code

from mmrepmlp.deployment import compile_frozen, convert_model, quantize_int8
from mmrepmlp.deployment.copy_order import merges_dims
from mmrepmlp.models.blocks import RepMLPBlock
from mmrepmlp.reparam import randomize_norm_layers

CPU = torch.device('cpu')
# How inductor's C++ writes a division of an index: what finding each element of the
# reassembled map in partition order through the merged map's indices takes.
INDEX_DIVISION = 'div_floor_integer'


@pytest.mark.parametrize('shape,new_shape,merges', [
    ((8, 4, 7, 4, 7, 8, 8), (8, 28, 28, 64), True),  # the reassembly: nh*h, nw*w, g*C/g
    ((8, 128, 392), (8, 8, 16, 392), False),  # a split only
    ((8, 1, 64), (8, 64), False),  # a dimension of one dropped
    ((2, 3, 4), (2, 12), True),
])
def test_merges_dims(shape, new_shape, merges):
    assert merges_dims(shape, new_shape) is merges


def block_and_relu(*more):
    torch.manual_seed(0)
    block = randomize_norm_layers(RepMLPBlock(16, 16, in_size=(8, 8), partition_size=(4, 4),
                                              groups=4, local_kernels=(1, 3)))
    model = torch.nn.Sequential(block, torch.nn.ReLU(), *more).eval()
    convert_model(model, log=lambda line: None)
    return model.requires_grad_(False)


def compiled_code(forward, x):
    with torch.no_grad():
        output, code = run_and_get_code(forward, x)
    torch._dynamo.reset()
    return output, '\n'.join(code)


def test_the_reassembly_is_compiled_without_index_divisions():
    model = block_and_relu()
    x = torch.randn(2, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)

    output, code = compiled_code(compile_frozen(model, CPU), x)
    # inductor's own compile of the same: the reassembly gathers through divisions
    _, plain = compiled_code(torch.compile(model, dynamic=False), x)

    assert INDEX_DIVISION in plain
    assert INDEX_DIVISION not in code
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
    assert output.is_contiguous(memory_format=torch.channels_last)


def test_the_int8_reassembly_is_compiled_without_index_divisions():
    """The int8 compile runs the pass beside its own (kernel sharing)."""
    model = block_and_relu(torch.nn.Conv2d(16, 16, 1))
    calibration = [torch.randn(4, 16, 8, 8) for _ in range(2)]
    int8 = quantize_int8(model, calibration, log=lambda line: None)

    _, code = compiled_code(int8, torch.randn(2, 16, 8, 8))

    assert 'qconv' in code and INDEX_DIVISION not in code
