"""The int8 compile's quantization parameters in tensors: the same integers as the
quantize and dequantize ops, and one kernel for layers that differ only in their scales."""
import functools
import re

import pytest
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401 (registers quantized_decomposed)
from torch._inductor.utils import run_and_get_code

from mmrepmlp.deployment import compile_frozen
from mmrepmlp.deployment.quantization.kernel_sharing import sharing_config

decomposed = torch.ops.quantized_decomposed
CPU = torch.device('cpu')


def requantize(x, scale, zero_point, quant_max):
    """A float map quantized, moved, dequantized and quantized again: what the kernels
    between RepMLP's int8 FCs do."""
    q = decomposed.quantize_per_tensor.default(x, scale, zero_point, 0, quant_max, torch.uint8)
    moved = q.permute(0, 2, 3, 1).contiguous()
    restored = decomposed.dequantize_per_tensor.default(moved, scale, zero_point, 0, quant_max,
                                                        torch.uint8)
    return decomposed.quantize_per_tensor.default(restored.relu() * 3, scale * 2, zero_point,
                                                  0, quant_max, torch.uint8)


def inputs():
    """Values beyond both ends of the range and exact halfway points of the scale."""
    x = torch.linspace(-40, 40, 2 * 3 * 7 * 11).reshape(2, 3, 7, 11)
    x.view(-1)[::5] = torch.arange(len(x.view(-1)[::5])) * 0.125 - 3.0625
    return x


@pytest.mark.parametrize('quant_max', [255, 127])  # 7-bit activations without VNNI
def test_the_shared_kernels_compute_the_quantize_ops_integers(quant_max):
    forward = functools.partial(requantize, scale=0.125, zero_point=9, quant_max=quant_max)
    expected = forward(inputs())
    actual = compile_frozen(forward, CPU, sharing_config())(inputs())
    assert actual.dtype is torch.uint8
    assert actual.max() == quant_max  # the clamp is exercised
    assert torch.equal(actual, expected)


def cpp_kernels(scale, options):
    """The C++ sources of the kernels compiled for ``requantize`` at ``scale``."""
    forward = functools.partial(requantize, scale=scale, zero_point=9, quant_max=255)
    _, wrappers = run_and_get_code(compile_frozen(forward, CPU, options), inputs())
    kernels = [source for wrapper in wrappers
               for source in re.findall(r"'''(.*?)'''", wrapper, re.DOTALL)]
    assert kernels
    return kernels


def test_layers_that_differ_in_scale_compile_the_same_kernels():
    torch._dynamo.reset()
    shared = [cpp_kernels(scale, sharing_config()) for scale in (0.125, 0.375)]
    assert shared[0] == shared[1]
    # Without the pass the scales are literals of the kernels: each scale compiles its own.
    literal = [cpp_kernels(scale, None) for scale in (0.125, 0.375)]
    assert literal[0] != literal[1]
