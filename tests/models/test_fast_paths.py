"""The fast paths of the library equal their reference paths.

Each speed-up (the partition-major deploy form, features-first FC3 with a single
un-partitioning copy in training, one-copy partitioning, channels_last outputs, in-place
residual adds, tap-wise conv-to-FC conversion, conversion without re-initialized layers) is
checked in float64 against a plain implementation of the same math: the paper's block written
with straightforward tensor ops on the channel-major FCs, the library's reference function
``conv_to_fc``, or the reference implementations of ``benchmarks/block_references.py`` (the
grouped-conv FC3, the fused Local Perceptron, the deploy forms of other layouts).
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from helpers_tools import load_script

from mmrepmlp.models.backbones import RepMLPResNet
from mmrepmlp.models.blocks import RepMLPBlock, RepMLPLightBlock, ResNetBottleneck
from mmrepmlp.models.layers import ConvBN, GroupwiseFC
from mmrepmlp.reparam import (
    add_conv_to_fc_,
    conv_to_fc,
    fuse_conv_bn,
    randomize_norm_layers,
)

references = load_script('benchmarks/block_references.py')
TINY_ARCH = dict(num_blocks=(1, 2, 2, 1), widths=(16, 32, 64, 128),
                 block_type=('base', 'bottleneck', 'light', 'base'), r=2, groups=2,
                 partition=4, local_kernels=(1, 3))


def make_block(seed=0, use=(), **kwargs):
    """A float64 block with random BN statistics; ``use``: reference implementations to put
    into it."""
    torch.manual_seed(seed)
    cfg = dict(in_channels=4, out_channels=6, in_size=(7, 9), partition_size=(4, 5),
               groups=2, local_kernels=(1, (3, 1), 3))
    cfg.update(kwargs)
    block = randomize_norm_layers(RepMLPBlock(**cfg).double(), seed=seed)
    for use_reference in use:
        use_reference(block)
    return block


def channel_major_fcs(block):
    """FC1, FC2 and FC3 ``(weight, bias)`` of a block in the paper's channel-major layout: the
    training form's, or the deploy form's reordered back."""
    if not block.deploy:
        fc3 = (block.fc3.weight, block.fc3.bias)
        if not block.with_global:
            return None, None, fc3
        return (block.fc1.weight, block.fc1.bias), (block.fc2.weight, block.fc2.bias), fc3
    return references.channel_major_fcs(block)


def reference_forward(block, x):
    """The paper's RepMLP block (Sec. 3) with plain tensor ops and the official grouped-conv FC3.

    Zero padding to whole partitions, per-partition mean, the broadcast add, the permute and
    the inverse permute are all written out, independently of the library's fast paths.
    """
    N, C, H, W = x.shape
    (h, w), (nh, nw), g = block.partition_size, block.num_parts, block.groups
    fc1, fc2, fc3 = channel_major_fcs(block)
    x = F.pad(x, (0, nw * w - W, 0, nh * h - H)).reshape(N, C, nh, h, nw, w)
    if block.with_global:
        pooled = x.mean(dim=(3, 5))
        if not block.deploy:
            pooled = block.global_bn(pooled)
        per_partition = F.linear(F.relu(F.linear(pooled.flatten(1), *fc1)), *fc2)
        x = x + per_partition.reshape(N, C, nh, 1, nw, 1)
    partitions = x.permute(0, 2, 4, 1, 3, 5).reshape(N * nh * nw, C, h, w)
    out = F.conv2d(partitions.reshape(N * nh * nw, C * h * w, 1, 1), fc3[0][..., None, None],
                   fc3[1], groups=g).flatten(1)
    if not block.deploy:
        out = block.fc3_bn(out)
        for branch in block.local_perceptron.values():
            out = out + branch(partitions).flatten(1)
    out_c = block.out_channels
    out = out.reshape(N, nh, nw, out_c, h, w).permute(0, 3, 1, 4, 2, 5)
    return out.reshape(N, out_c, nh * h, nw * w)[:, :, :H, :W]


BLOCK_CASES = {
    'grouped, padded': dict(),
    'no groups': dict(groups=1),
    'whole partitions': dict(in_size=(8, 10)),
    'single partition (no global)': dict(in_size=(4, 5)),
    'no local perceptron': dict(local_kernels=()),
    'fused local perceptron': dict(use=(references.use_fused_local_perceptron, )),
}


@pytest.mark.parametrize('case', BLOCK_CASES)
@pytest.mark.parametrize('channels_last', [False, True])
def test_deploy_forward_equals_the_reference(case, channels_last):
    block = make_block(**BLOCK_CASES[case]).eval()
    block.switch_to_deploy()
    x = torch.randn(3, 4, *block.in_size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = block(x)
        expected = reference_forward(block, x)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # The output keeps the input's memory format, so a channels_last model stays so.
    if block.in_size == block.padded_size:
        assert out.is_contiguous(memory_format=torch.channels_last) == channels_last


DEPLOY_CASES = {case: BLOCK_CASES[case] for case in BLOCK_CASES if 'fused' not in case}


@pytest.mark.parametrize('case', DEPLOY_CASES)
@pytest.mark.parametrize('layout', sorted(references.DEPLOY_LAYOUTS))
@pytest.mark.parametrize('channels_last', [False, True])
def test_deploy_layout_references_compute_the_deploy_form(case, layout, channels_last):
    """The deploy forms of the other layouts, which the benchmarks time beside the block's."""
    block = make_block(**DEPLOY_CASES[case]).eval()
    block.switch_to_deploy()
    other = references.DEPLOY_LAYOUTS[layout](block)
    x = torch.randn(3, 4, *block.in_size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(other(x), reference_forward(block, x), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize('case', BLOCK_CASES)
@pytest.mark.parametrize('fc3', ['matmul', 'conv'])
def test_training_forward_and_gradients_equal_the_reference(case, fc3):
    block = make_block(**BLOCK_CASES[case]).train()
    if fc3 == 'conv':
        references.use_conv_fc3(block)
    reference = copy.deepcopy(block)
    x = torch.randn(3, 4, *block.in_size, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out, expected = block(x), reference_forward(reference, x_ref)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    for (name, param), ref_param in zip(block.named_parameters(), reference.parameters()):
        torch.testing.assert_close(param.grad, ref_param.grad, rtol=1e-10, atol=1e-12,
                                   msg=lambda msg, name=name: f'{name}: {msg}')
    # The BN statistics were updated identically as well.
    for buf, ref_buf in zip(block.buffers(), reference.buffers()):
        torch.testing.assert_close(buf, ref_buf, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('kernel_shape, partition', [
    ((6, 3, 3, 3), (4, 5)),
    ((6, 3, 5, 1), (5, 4)),
    ((4, 2, 7, 7), (3, 3)),  # a kernel larger than the partition: only some taps land
    ((6, 3, 3), 7),  # 1-D
])
@pytest.mark.parametrize('recording', [False, True], ids=['no_grad', 'autograd'])
def test_add_conv_to_fc_equals_fc_plus_the_reference_conversion(kernel_shape, partition,
                                                                recording):
    """Both ways: tap by tap in place, and gathered when autograd records (a kernel that
    requires grad, as in quantization-aware training)."""
    torch.manual_seed(0)
    kernel = torch.randn(kernel_shape, dtype=torch.float64, requires_grad=recording)
    with torch.no_grad():
        fc_form = conv_to_fc(kernel, None, partition)[0]
    fc_weight = torch.randn_like(fc_form)
    expected = fc_weight + fc_form
    result = add_conv_to_fc_(fc_weight, kernel, partition)
    assert result is fc_weight and result.requires_grad == recording
    assert torch.equal(result, expected)


def test_add_conv_to_fc_is_differentiable_like_the_reference():
    torch.manual_seed(0)
    kernel = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    base = torch.randn(4 * 20, 2 * 20, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(4 * 20, 2 * 20, dtype=torch.float64)
    fast = torch.autograd.grad((add_conv_to_fc_(base * 2, kernel, (4, 5)) * grad).sum(),
                               (base, kernel))
    ref = torch.autograd.grad(((base * 2 + conv_to_fc(kernel, None, (4, 5))[0]) * grad).sum(),
                              (base, kernel))
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_add_conv_to_fc_rejects_a_weight_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r'fc_weight has shape \(10, 10\).*needs \(80, 40\)'):
        add_conv_to_fc_(torch.zeros(10, 10), torch.zeros(4, 2, 3, 3), (4, 5))
    with pytest.raises(ValueError, match='must be odd'):
        add_conv_to_fc_(torch.zeros(80, 40), torch.zeros(4, 2, 2, 3), (4, 5))


@pytest.mark.parametrize('case', BLOCK_CASES)
def test_conversion_equals_the_reference_conversion(case):
    """switch_to_deploy's FC3 is FC3-BN fused plus ``conv_to_fc`` of every fused branch."""
    block = make_block(**BLOCK_CASES[case])
    h, w = block.partition_size
    with torch.no_grad():
        weight, bias = fuse_conv_bn(block.fc3, block.fc3_bn)
        for branch in block.local_perceptron.values():
            kernel, branch_bias = branch.fused_weight_bias()
            fc_weight, fc_bias = conv_to_fc(kernel, branch_bias, (h, w), block.groups)
            weight, bias = weight + fc_weight, bias + fc_bias
    keys = set(block.state_dict())
    block.switch_to_deploy()
    _, _, fc3_weight, fc3_bias = block.get_equivalent_fc1_fc3_params()
    torch.testing.assert_close(fc3_weight, weight, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(fc3_bias, bias, rtol=1e-14, atol=1e-14)
    assert type(block.fc3) is GroupwiseFC
    deploy_keys = {k for k in keys if k.startswith(('fc1.', 'fc2.', 'fc3.'))} | {'fc3.bias'}
    assert set(block.state_dict()) == deploy_keys


@pytest.mark.parametrize('groups', [1, 3])
@pytest.mark.parametrize('cls', [GroupwiseFC, references.ConvGroupwiseFC],
                         ids=['matmul', 'conv'])
@pytest.mark.parametrize('bias', [True, False])
def test_groupwise_fc_features_first_and_grouped_are_the_forward(groups, cls, bias):
    torch.manual_seed(0)
    fc = cls(12, 6, groups, bias=bias).double()
    x = torch.randn(5, 12, dtype=torch.float64)
    expected = F.conv2d(x[..., None, None], fc.weight[..., None, None], fc.bias,
                        groups=groups).flatten(1)
    torch.testing.assert_close(fc(x), expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(fc.features_first(x), expected.t(), rtol=1e-14, atol=1e-14)
    by_group = x.reshape(5, groups, -1).transpose(0, 1).contiguous()
    torch.testing.assert_close(fc.grouped(by_group),
                               expected.reshape(5, groups, -1).transpose(0, 1),
                               rtol=1e-14, atol=1e-14)


def test_groupwise_fc_from_weight_holds_the_given_tensors():
    weight, bias = torch.randn(6, 4), torch.randn(6)
    fc = GroupwiseFC.from_weight(weight, bias, groups=3)
    assert (fc.in_features, fc.out_features, fc.groups) == (12, 6, 3)
    assert fc.weight.data_ptr() == weight.data_ptr() and fc.bias.data_ptr() == bias.data_ptr()
    assert fc.weight.requires_grad and fc.bias.requires_grad
    assert GroupwiseFC.from_weight(weight, groups=3).bias is None


def test_conv_bn_conversion_keeps_the_function_and_the_keys():
    torch.manual_seed(0)
    layer = randomize_norm_layers(ConvBN(4, 6, 3, padding=1, groups=2).double()).eval()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(x)
        layer.switch_to_deploy()
        torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)
    assert set(layer.state_dict()) == {'conv.weight', 'conv.bias'}
    assert layer.conv.bias.requires_grad


@pytest.mark.parametrize('with_cp', [False, True])
@pytest.mark.parametrize('block_type', ['bottleneck', 'light'])
def test_inplace_residual_add_keeps_values_and_gradients(block_type, with_cp):
    torch.manual_seed(0)
    if block_type == 'bottleneck':
        block = ResNetBottleneck(8, 16, stride=2, with_cp=with_cp)
    else:
        block = RepMLPLightBlock(16, 16, dict(in_size=4, partition_size=2, groups=2,
                                              local_kernels=(1, )),
                                 reduction=4, with_cp=with_cp)
    block = randomize_norm_layers(block.double()).train()
    reference = copy.deepcopy(block)
    x = torch.randn(2, block.in_channels, 4, 4, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out = block(x)
    expected = F.relu(reference.residual(x_ref) + reference.shortcut(x_ref))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    out.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    for param, ref_param in zip(block.parameters(), reference.parameters()):
        torch.testing.assert_close(param.grad, ref_param.grad, rtol=1e-10, atol=1e-12)


def test_channels_last_deploy_model_equals_the_contiguous_one():
    torch.manual_seed(0)
    model = randomize_norm_layers(RepMLPResNet(arch=TINY_ARCH, img_size=64).double()).eval()
    model.switch_to_deploy()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)[0]
        out = cl_model(x.contiguous(memory_format=torch.channels_last))[0]
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('channels_last', [False, True])
def test_deploy_forward_compiles_without_graph_breaks(channels_last):
    import torch._dynamo as dynamo

    torch.manual_seed(0)
    model = RepMLPResNet(arch=TINY_ARCH, img_size=64).eval()
    model.switch_to_deploy()
    x = torch.randn(2, 3, 64, 64)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dynamo.reset()
    explanation = dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
