"""The pure re-parameterization functions, each checked on its own against the modules."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrepmlp.reparam import (
    absorb_bn_into_fc,
    absorb_bn_module_into_fc,
    conv_to_fc,
    fuse_bn,
    fuse_conv_bn,
    pad_kernel,
    randomize_norm_layers,
)

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
# Relative tolerance of a fused result against the unfused modules, per dtype.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 3e-2,
             torch.float16: 3e-3}


def rel_error(actual, expected):
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def bn(num_features, dims=2, affine=True, seed=0):
    layer = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(num_features, affine=affine)
    return randomize_norm_layers(layer, seed=seed).eval()


def partitions_as_fc_input(x):
    """``(N, C, *size)`` -> ``(N, C*prod(size))``, channel-major like the FC kernels."""
    return x.reshape(x.shape[0], -1)


# ---------------------------------------------------------------------------------- fusing
@pytest.mark.parametrize('dtype', DTYPES)
def test_fuse_conv_bn_matches_conv_then_bn(dtype):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, (3, 5), padding=(1, 2), groups=2, bias=False)
    norm = bn(6)
    x = torch.randn(2, 4, 6, 7)
    expected = norm(conv(x))  # float32 reference
    conv, norm = conv.to(dtype), norm.to(dtype)
    weight, bias = fuse_conv_bn(conv, norm)
    assert weight.dtype == dtype and bias.dtype == dtype
    fused = F.conv2d(x.to(dtype), weight, bias, padding=(1, 2), groups=2)
    assert rel_error(fused, expected) <= max(TOLERANCE[dtype], 1e-5)


def test_fuse_linear_bn1d_with_bias_and_without_affine():
    torch.manual_seed(0)
    fc = nn.Linear(5, 3).double()
    for affine in (True, False):
        norm = bn(3, dims=1, affine=affine).double()
        x = torch.randn(4, 5, dtype=torch.float64)
        weight, bias = fuse_conv_bn(fc, norm)
        torch.testing.assert_close(F.linear(x, weight, bias), norm(fc(x)), rtol=1e-12,
                                   atol=1e-12)


def test_fuse_bn_without_bias_equals_zero_bias():
    weight = torch.randn(3, 2, 1, 1, dtype=torch.float64)
    stats = [torch.rand(3, dtype=torch.float64) + 0.5 for _ in range(4)]
    no_bias = fuse_bn(weight, None, *stats, 1e-5)
    zero_bias = fuse_bn(weight, torch.zeros(3, dtype=torch.float64), *stats, 1e-5)
    for a, b in zip(no_bias, zero_bias):
        assert torch.equal(a, b)


def test_fusing_a_norm_without_running_stats_is_rejected():
    norm = nn.BatchNorm2d(3, track_running_stats=False)
    with pytest.raises(ValueError, match='running statistics'):
        fuse_conv_bn(nn.Conv2d(3, 3, 1), norm)
    with pytest.raises(ValueError, match='running statistics'):
        fuse_conv_bn(nn.Conv2d(3, 3, 1), nn.GroupNorm(1, 3))


# ------------------------------------------------------------------------------ pad_kernel
@pytest.mark.parametrize('shape, size', [((2, 3, 1, 1), 5), ((2, 3, 3, 1), (5, 3)),
                                         ((2, 3, 1, 3), (3, 7)), ((2, 3, 3), 7)])
def test_padded_kernel_gives_the_same_conv(shape, size):
    torch.manual_seed(0)
    kernel = torch.randn(*shape, dtype=torch.float64)
    padded = pad_kernel(kernel, size)
    target = (size, ) * (len(shape) - 2) if isinstance(size, int) else size
    assert padded.shape[2:] == target
    conv = F.conv1d if len(shape) == 3 else F.conv2d
    x = torch.randn(2, 3, *([8] * (len(shape) - 2)), dtype=torch.float64)
    original = conv(x, kernel, padding=tuple(k // 2 for k in shape[2:]))
    torch.testing.assert_close(conv(x, padded, padding=tuple(s // 2 for s in target)),
                               original)


@pytest.mark.parametrize('size', [1, (3, 4), 2])
def test_pad_kernel_rejects_smaller_or_odd_difference(size):
    with pytest.raises(ValueError, match='cannot pad'):
        pad_kernel(torch.zeros(1, 1, 3, 3), size)


# ------------------------------------------------------------------------------ conv_to_fc
def conv_per_partition(x, kernel, bias, groups):
    conv = F.conv1d if kernel.dim() == 3 else F.conv2d
    return conv(x, kernel, bias, padding=tuple(k // 2 for k in kernel.shape[2:]),
                groups=groups)


@pytest.mark.parametrize('channels, groups, kernel_size, size', [
    ((4, 6), 2, (3, 3), (4, 5)),
    ((3, 3), 1, (1, 3), (3, 3)),
    ((6, 4), 2, (5, 1), (5, 2)),
    ((4, 4), 4, (3, 3), (3, 3)),
    ((2, 4), 2, (3, ), (6, )),
])
@pytest.mark.parametrize('with_bias', [True, False])
def test_conv_to_fc_matches_the_conv(channels, groups, kernel_size, size, with_bias):
    torch.manual_seed(0)
    in_c, out_c = channels
    kernel = torch.randn(out_c, in_c // groups, *kernel_size, dtype=torch.float64)
    bias = torch.randn(out_c, dtype=torch.float64) if with_bias else None
    fc_weight, fc_bias = conv_to_fc(kernel, bias, size if len(size) > 1 else size[0], groups)
    pixels = 1
    for s in size:
        pixels *= s
    assert fc_weight.shape == (out_c * pixels, in_c * pixels // groups)
    x = torch.randn(3, in_c, *size, dtype=torch.float64)
    expected = conv_per_partition(x, kernel, bias, groups).reshape(3, -1)
    fc = F.conv2d(partitions_as_fc_input(x)[..., None, None], fc_weight[..., None, None],
                  fc_bias, groups=groups).flatten(1)
    torch.testing.assert_close(fc, expected, rtol=1e-12, atol=1e-12)
    assert (fc_bias is None) == (bias is None)


@pytest.mark.parametrize('dtype', DTYPES)
def test_conv_to_fc_keeps_dtype(dtype):
    """MMPretrain builds its identity in float32, which breaks float64 conversion."""
    torch.manual_seed(0)
    kernel = torch.randn(4, 2, 3, 3)
    bias = torch.randn(4)
    fc_weight, fc_bias = conv_to_fc(kernel.to(dtype), bias.to(dtype), 3, groups=2)
    assert fc_weight.dtype == dtype and fc_bias.dtype == dtype
    reference, _ = conv_to_fc(kernel.double(), bias.double(), 3, groups=2)
    assert rel_error(fc_weight, reference) <= TOLERANCE[dtype]


def test_conv_to_fc_rejects_bad_kernels():
    with pytest.raises(ValueError, match='odd'):
        conv_to_fc(torch.zeros(2, 1, 2, 2), None, 4)
    with pytest.raises(ValueError, match='divisible by groups'):
        conv_to_fc(torch.zeros(3, 1, 3, 3), None, 4, groups=2)
    with pytest.raises(ValueError, match='1-D or 2-D'):
        conv_to_fc(torch.zeros(2, 1, 3, 3, 3), None, 4)


# ------------------------------------------------------------------------ absorb_bn_into_fc
@pytest.mark.parametrize('repeats', [1, 4])
@pytest.mark.parametrize('affine', [True, False])
def test_absorb_bn_into_fc_matches_bn_then_fc(repeats, affine):
    torch.manual_seed(0)
    norm = bn(3, affine=affine).double()
    fc = nn.Linear(3 * repeats, 5).double()
    pooled = torch.randn(2, 3, repeats, 1, dtype=torch.float64)
    expected = fc(norm(pooled).flatten(1))
    weight, bias = absorb_bn_module_into_fc(fc, norm, repeats=repeats)
    torch.testing.assert_close(F.linear(pooled.flatten(1), weight, bias), expected,
                               rtol=1e-12, atol=1e-12)


def test_absorb_bn_into_fc_without_fc_bias():
    norm = bn(2).double()
    weight = torch.randn(3, 2, dtype=torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64)
    new_weight, new_bias = absorb_bn_into_fc(weight, None, norm.running_mean,
                                             norm.running_var, norm.weight, norm.bias,
                                             norm.eps)
    torch.testing.assert_close(F.linear(x, new_weight, new_bias),
                               F.linear(norm(x[..., None, None]).flatten(1), weight))


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_absorb_and_fuse_run_in_half_precision(dtype):
    norm = bn(3).to(dtype)
    fc = nn.Linear(6, 4).to(dtype)
    weight, bias = absorb_bn_module_into_fc(fc, norm, repeats=2)
    assert weight.dtype == bias.dtype == dtype
    reference = absorb_bn_module_into_fc(fc.double(), norm.double(), repeats=2)
    assert rel_error(weight, reference[0]) <= TOLERANCE[dtype]
    assert rel_error(bias, reference[1]) <= TOLERANCE[dtype]


# -------------------------------------------------------------------------------- gradcheck
def rand(*shape, positive=False):
    t = torch.rand(*shape, dtype=torch.float64) + 0.5 if positive else torch.randn(
        *shape, dtype=torch.float64)
    return t.requires_grad_()


def test_gradcheck_fuse_bn():
    assert torch.autograd.gradcheck(
        lambda *t: fuse_bn(*t, 1e-5),
        (rand(3, 2, 3, 3), rand(3), rand(3), rand(3, positive=True), rand(3), rand(3)))


def test_gradcheck_pad_kernel():
    assert torch.autograd.gradcheck(lambda k: pad_kernel(k, (5, 3)), (rand(2, 1, 3, 1), ))


@pytest.mark.parametrize('groups', [1, 2])
def test_gradcheck_conv_to_fc(groups):
    assert torch.autograd.gradcheck(lambda k, b: conv_to_fc(k, b, (3, 2), groups),
                                    (rand(2, 2 // groups, 3, 1), rand(2)))


def test_gradcheck_absorb_bn_into_fc():
    assert torch.autograd.gradcheck(
        lambda *t: absorb_bn_into_fc(*t, 1e-5, repeats=2),
        (rand(3, 4), rand(3), rand(2), rand(2, positive=True), rand(2), rand(2)))
