"""RepMLPNet's share-set math: ``fuse_bn`` with ``repeats`` and ``inject_locality``, each
against the unfused modules, and ``reparameterize_model`` on blocks in the official code's
style (``local_inject``), whose own conversion builds float32 tensors."""
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrepmlp.reparam import (
    conversion_method,
    fuse_bn,
    fuse_conv_bn,
    inject_locality,
    randomize_norm_layers,
    reparameterize_model,
)

S, H, W = 3, 4, 5  # share-sets and a non-square partition


def shareset_fc3(bias=False):
    """FC3 as the official code has it: a grouped 1x1 conv over ``S`` share-sets."""
    return nn.Conv2d(S * H * W, S * H * W, 1, groups=S, bias=bias).double()


def branches(kernels):
    return [randomize_norm_layers(nn.Sequential(
        nn.Conv2d(S, S, k, padding=(k[0] // 2, k[1] // 2), groups=S, bias=False),
        nn.BatchNorm2d(S))).double().eval() for k in kernels]


def unfused(fc3, fc3_bn, convs, rows):
    """FC3, its BN over the share-sets and the conv branches on ``rows`` ``(R, S, H, W)``."""
    out = fc3_bn(fc3(rows.reshape(-1, S * H * W, 1, 1)).reshape(-1, S, H, W))
    for conv in convs:
        out = out + conv(rows)
    return out


@pytest.mark.parametrize('kernels', [[], [(1, 1)], [(1, 1), (3, 3)], [(3, 3), (1, 5)]])
@pytest.mark.parametrize('bias', [False, True])
def test_inject_locality_equals_fc3_bn_and_branches(kernels, bias):
    torch.manual_seed(0)
    fc3 = shareset_fc3(bias)
    fc3_bn = randomize_norm_layers(nn.BatchNorm2d(S)).double().eval()
    convs = branches(kernels)
    rows = torch.randn(6, S, H, W, dtype=torch.float64)

    weight, fused_bias = inject_locality(fc3, fc3_bn, [fuse_conv_bn(c[0], c[1]) for c in convs],
                                         (H, W))

    assert weight.shape == (S * H * W, H * W) and fused_bias.shape == (S * H * W, )
    fused = F.conv2d(rows.reshape(-1, S * H * W, 1, 1), weight[..., None, None], fused_bias,
                     groups=S)
    torch.testing.assert_close(fused.reshape(rows.shape), unfused(fc3, fc3_bn, convs, rows),
                               rtol=1e-12, atol=1e-12)


def test_fuse_bn_repeats_equals_the_repeated_statistics():
    weight = torch.randn(S * 4, 7, dtype=torch.float64)
    stats = [torch.rand(S, dtype=torch.float64) + 0.5 for _ in range(4)]
    repeated = fuse_bn(weight, None, *[t.repeat_interleave(4) for t in stats], 1e-5)
    for a, b in zip(fuse_bn(weight, None, *stats, 1e-5, repeats=4), repeated):
        assert torch.equal(a, b)


def test_gradcheck_inject_locality():
    torch.manual_seed(0)
    fc3_bn = randomize_norm_layers(nn.BatchNorm2d(S)).double().eval()

    def injected(fc3_weight, kernel, bias):
        fc3 = SimpleNamespace(weight=fc3_weight, bias=None)  # all that FC3 needs to have
        return inject_locality(fc3, fc3_bn, [(kernel, bias)], (H, W))

    inputs = [torch.randn(shape, dtype=torch.float64, requires_grad=True)
              for shape in ((S * H * W, H * W), (S, 1, 3, 3), (S, ))]
    assert torch.autograd.gradcheck(injected, inputs)


class OfficialStyleBlock(nn.Module):
    """A RepMLPNet block with the official code's attribute names (``h``, ``w``, ``fc3``,
    ``fc3_bn``, ``repconv<k>``, ``deploy``), whose ``local_inject`` must not be called."""

    def __init__(self, kernels=(1, 3)):
        super().__init__()
        self.h, self.w, self.deploy = H, W, False
        self.fc3 = nn.Conv2d(S * H * W, S * H * W, 1, groups=S, bias=False)
        self.fc3_bn = nn.BatchNorm2d(S)
        for k in kernels:
            setattr(self, f'repconv{k}', nn.Sequential())
            getattr(self, f'repconv{k}').add_module(
                'conv', nn.Conv2d(S, S, k, padding=k // 2, groups=S, bias=False))
            getattr(self, f'repconv{k}').add_module('bn', nn.BatchNorm2d(S))

    def forward(self, rows):
        convs = [m for name, m in self.named_children() if re.fullmatch(r'repconv\d+', name)]
        return unfused(self.fc3, self.fc3_bn, convs, rows)

    def local_inject(self):
        raise AssertionError('the peer conversion must not be called')


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_reparameterize_model_converts_official_style_blocks_by_its_own_math(dtype):
    torch.manual_seed(0)
    model = randomize_norm_layers(nn.Sequential(OfficialStyleBlock())).to(dtype).eval()
    rows = torch.randn(4, S, H, W, dtype=dtype)
    with torch.no_grad():
        expected = model(rows)
        converted = reparameterize_model(model)
        block = converted[0]
        assert block.deploy and isinstance(block.fc3_bn, nn.Identity)
        assert not hasattr(block, 'repconv1') and block.fc3.bias.dtype == dtype
        tolerance = 1e-12 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(block(rows), expected, rtol=tolerance, atol=tolerance)
        reparameterize_model(converted, inplace=True)  # injected already: left alone


def test_a_wrapper_set_on_the_instance_wraps_the_exact_conversion():
    """What the tools do to report each conversion: wrap ``conversion_method(module)`` in an
    instance attribute of the same name; the walk then calls the wrapper, which calls
    mmrepmlp's conversion, not the peer's ``local_inject``."""
    model = randomize_norm_layers(nn.Sequential(OfficialStyleBlock())).double().eval()
    block = model[0]
    exact = conversion_method(block)
    calls = []

    def reporting():
        exact()
        calls.append(exact.__name__)

    setattr(block, exact.__name__, reporting)
    reparameterize_model(model, inplace=True)
    assert calls == ['local_inject'] and block.deploy


class Float32OnlyConversion(nn.Module):
    """A block whose own conversion builds a float32 tensor, as the official code's does."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 3))

    def switch_to_deploy(self):
        self.weight.data = F.linear(torch.eye(3), self.weight)


def test_an_unknown_conversion_failing_outside_float32_is_explained():
    model = nn.Sequential(Float32OnlyConversion()).double()
    with pytest.raises(RuntimeError, match=r'Float32OnlyConversion\.switch_to_deploy\(\) failed '
                       r'on parameters of torch\.float64 .*convert the model in float32'):
        reparameterize_model(model)
    reparameterize_model(model.float())  # in float32 it converts
