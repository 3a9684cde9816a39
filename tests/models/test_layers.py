"""ConvBN and GroupwiseFC: the layers RepMLP blocks are built from."""
import copy

import pytest
import torch
import torch.nn.functional as F
from helpers_tools import load_script

from mmrepmlp.models.layers import ConvBN, GroupwiseFC
from mmrepmlp.reparam import randomize_norm_layers

references = load_script('benchmarks/block_references.py')


# ---------------------------------------------------------------------------------- ConvBN
@pytest.mark.parametrize('kernel, padding, groups', [(3, 1, 1), ((1, 3), (0, 1), 2),
                                                     (5, 2, 4)])
def test_conv_bn_fuses_exactly(kernel, padding, groups):
    torch.manual_seed(0)
    layer = randomize_norm_layers(ConvBN(4, 8, kernel, padding=padding, groups=groups)).double()
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    expected = layer.eval()(x)
    weight, bias = layer.fused_weight_bias()
    torch.testing.assert_close(F.conv2d(x, weight, bias, padding=padding, groups=groups),
                               expected, rtol=1e-12, atol=1e-12)
    layer.switch_to_deploy()
    assert layer.deploy and not hasattr(layer, 'bn')
    assert set(layer.state_dict()) == {'conv.weight', 'conv.bias'}
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)


def test_conv_bn_deploy_construction_and_idempotent_switch():
    layer = randomize_norm_layers(ConvBN(2, 4, 3, padding=1)).eval()
    deployed = copy.deepcopy(layer)
    deployed.switch_to_deploy()
    state = copy.deepcopy(deployed.state_dict())
    deployed.switch_to_deploy()
    assert all(torch.equal(deployed.state_dict()[k], v) for k, v in state.items())
    fresh = ConvBN(2, 4, 3, padding=1, deploy=True)
    fresh.load_state_dict(deployed.state_dict(), strict=True)
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(fresh(x), layer(x), rtol=1e-5, atol=1e-5)
    assert fresh.fused_weight_bias()[0] is fresh.conv.weight


def test_conv_bn_without_running_stats_cannot_be_fused():
    layer = ConvBN(2, 2, 1, norm_cfg=dict(type='BN', track_running_stats=False))
    with pytest.raises(ValueError, match='running statistics'):
        layer.switch_to_deploy()


# ----------------------------------------------------------------------------- GroupwiseFC
def reference_groupwise_fc(x, weight, bias, groups):
    """Each group as its own small FC, concatenated."""
    outs = [
        F.linear(xg, wg) for xg, wg in zip(x.chunk(groups, dim=1), weight.chunk(groups, dim=0))
    ]
    out = torch.cat(outs, dim=1)
    return out if bias is None else out + bias


@pytest.mark.parametrize('cls', [GroupwiseFC, references.ConvGroupwiseFC],
                         ids=['matmul', 'conv'])
@pytest.mark.parametrize('groups', [1, 3])
@pytest.mark.parametrize('bias', [True, False])
def test_groupwise_fc_matches_per_group_fcs(cls, groups, bias):
    torch.manual_seed(0)
    fc = cls(12, 6, groups, bias=bias).double()
    x = torch.randn(5, 12, dtype=torch.float64)
    expected = reference_groupwise_fc(x, fc.weight, fc.bias, groups)
    torch.testing.assert_close(fc(x), expected, rtol=1e-12, atol=1e-12)


def test_groupwise_fc_implementations_agree_in_outputs_and_gradients():
    torch.manual_seed(0)
    matmul = GroupwiseFC(24, 16, groups=4)
    conv = references.ConvGroupwiseFC(24, 16, groups=4)
    conv.load_state_dict(matmul.state_dict())
    x = torch.randn(7, 24)
    out_matmul, out_conv = matmul(x), conv(x)
    scale = out_conv.abs().max()
    assert (out_matmul - out_conv).abs().max() / scale <= 1e-5
    grad = torch.randn_like(out_conv)
    out_matmul.backward(grad)
    out_conv.backward(grad)
    for name in ('weight', 'bias'):
        expected = getattr(conv, name).grad
        actual = getattr(matmul, name).grad
        assert (actual - expected).abs().max() / expected.abs().max() <= 1e-5


def test_groupwise_fc_weight_layout_is_the_grouped_conv_one():
    fc = GroupwiseFC(12, 8, groups=4)
    assert fc.weight.shape == (8, 3)
    x = torch.randn(2, 12)
    conv = F.conv2d(x[..., None, None], fc.weight[..., None, None], fc.bias, groups=4)
    torch.testing.assert_close(fc(x), conv.flatten(1))


def test_groupwise_fc_gradcheck():
    fc = GroupwiseFC(6, 4, groups=2).double()
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)

    def apply(inputs, weight, bias):
        return torch.func.functional_call(fc, {'weight': weight, 'bias': bias}, (inputs, ))

    assert torch.autograd.gradcheck(
        apply, (x, fc.weight.detach().clone().requires_grad_(),
                fc.bias.detach().clone().requires_grad_()))


@pytest.mark.parametrize('kwargs, message', [
    (dict(in_features=10, out_features=6, groups=4), 'divisible by groups'),
    (dict(in_features=8, out_features=6, groups=4), 'divisible by groups'),
    (dict(in_features=8, out_features=8, groups=0), 'positive int'),
])
def test_groupwise_fc_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupwiseFC(**kwargs)


def test_groupwise_fc_wrong_input_names_both_shapes():
    with pytest.raises(ValueError, match=r'\(N, 8\), got \(2, 6\)'):
        GroupwiseFC(8, 4, groups=2)(torch.randn(2, 6))


def test_groupwise_fc_without_bias_has_no_bias_key():
    assert set(GroupwiseFC(4, 4, groups=2, bias=False).state_dict()) == {'weight'}
