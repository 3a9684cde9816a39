"""RepMLPBlock and RepMLP1d: structure, errors, conversion, implementations and gradients."""
import copy

import pytest
import torch
from helpers_tools import load_script, relative_difference
from mmpretrain.registry import MODELS
from torch.func import functional_call

from mmrepmlp.models.blocks import RepMLP1d, RepMLPBlock
from mmrepmlp.reparam import deploy_difference, randomize_norm_layers, repmlp_model_convert

references = load_script('benchmarks/block_references.py')


def make_block(dtype=torch.float64, seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = dict(in_channels=4, out_channels=6, in_size=(9, 10), partition_size=(4, 5),
               groups=2, local_kernels=(1, (3, 1), 3))
    cfg.update(kwargs)
    return randomize_norm_layers(RepMLPBlock(**cfg).to(dtype), seed=seed)


# ------------------------------------------------------------------------------ structure
def test_structure_and_shapes_follow_the_paper():
    block = RepMLPBlock(8, 16, in_size=(14, 21), partition_size=7, groups=4,
                        fc1_fc2_reduction=2)
    assert block.num_parts == (2, 3)
    assert block.fc1.weight.shape == (8 * 6 // 2, 8 * 6)
    assert block.fc2.weight.shape == (8 * 6, 8 * 6 // 2)
    assert block.fc3.weight.shape == (16 * 49, 8 * 49 // 4)
    assert block.fc3_bn.num_features == 16 * 49
    assert list(block.local_perceptron) == ['conv1x1', 'conv3x3', 'conv5x5']
    assert block.local_perceptron['conv5x5'].conv.weight.shape == (16, 2, 5, 5)
    assert block(torch.randn(2, 8, 14, 21)).shape == (2, 16, 14, 21)


def test_no_global_perceptron_for_a_single_partition_or_on_request():
    single = RepMLPBlock(4, 4, in_size=6, partition_size=6, local_kernels=(3, ))
    assert not single.with_global and not hasattr(single, 'fc1')
    without = RepMLPBlock(4, 4, in_size=8, partition_size=4, with_global=False,
                          local_kernels=(3, ))
    assert not without.with_global and not hasattr(without, 'global_bn')


def test_without_local_perceptron():
    block = make_block(local_kernels=())
    assert len(block.local_perceptron) == 0
    max_abs, max_rel, deployed = deploy_difference(block, torch.randn(2, 4, 9, 10,
                                                                      dtype=torch.float64))
    assert max_rel < 1e-12


def test_registered_and_buildable_from_config():
    block = MODELS.build(dict(type='RepMLPBlock', in_channels=4, out_channels=4, in_size=8,
                              partition_size=4, local_kernels=(1, 3)))
    assert isinstance(block, RepMLPBlock)
    assert isinstance(MODELS.build(dict(type='RepMLP1d', in_channels=2, out_channels=2,
                                        in_length=8, partition_length=4,
                                        local_kernels=(1, 3))), RepMLP1d)


def direct_forward(block, x):
    """The training-time block computed partition by partition, as the paper describes it."""
    (h, w), (nh, nw) = block.partition_size, block.num_parts
    N, C, H, W = x.shape
    x = torch.nn.functional.pad(x, (0, nw * w - W, 0, nh * h - H))
    out = torch.zeros(N, block.out_channels, nh * h, nw * w, dtype=x.dtype)
    if block.with_global:
        pooled = torch.stack([
            torch.stack([x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w].mean((2, 3))
                         for j in range(nw)], dim=-1) for i in range(nh)
        ], dim=-2)  # (N, C, nh, nw)
        hidden = torch.relu(block.fc1(block.global_bn(pooled).reshape(N, -1)))
        per_partition = block.fc2(hidden).reshape(N, C, nh, nw)
    for i in range(nh):
        for j in range(nw):
            part = x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w]
            if block.with_global:
                part = part + per_partition[:, :, i, j, None, None]
            fc = block.fc3_bn(block.fc3(part.reshape(N, -1))).reshape(N, -1, h, w)
            local = sum(branch(part) for branch in block.local_perceptron.values())
            out[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w] = fc + local
    return out[:, :, :H, :W]


@pytest.mark.parametrize('in_size, partition', [((8, 10), (4, 5)), ((9, 11), (4, 5))])
def test_matches_a_direct_per_partition_computation(in_size, partition):
    block = make_block(in_size=in_size, partition_size=partition).eval()
    x = torch.randn(2, 4, *in_size, dtype=torch.float64)
    torch.testing.assert_close(block(x), direct_forward(block, x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize('kwargs, message', [
    (dict(local_kernels=(7, )), 'larger than the partition'),
    (dict(local_kernels=((3, 7), )), 'larger than the partition'),
    (dict(local_kernels=(2, )), 'odd'),
    (dict(local_kernels=(3, (3, 3))), 'more than once'),
    (dict(local_kernels=(0, )), 'local_kernels must be an int >= 1'),
    (dict(in_channels=5), 'divisible by groups'),
    (dict(out_channels=7), 'divisible by groups'),
    (dict(groups=0), 'groups must be an int >= 1'),
    (dict(fc1_fc2_reduction=5), 'fc1_fc2_reduction=5 must divide'),
    (dict(fc1_fc2_reduction=0), 'fc1_fc2_reduction must be an int >= 1'),
    (dict(partition_size=(10, 5)), 'larger than in_size'),
    (dict(in_size=(9, -1)), 'in_size must be an int >= 1'),
    (dict(norm_cfg=dict(type='GN', num_groups=2)), 'batch norm with running statistics'),
])
def test_bad_config_is_rejected_at_construction(kwargs, message):
    cfg = dict(in_channels=4, out_channels=6, in_size=(9, 10), partition_size=(4, 5),
               groups=2, local_kernels=(1, 3))
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RepMLPBlock(**cfg)


@pytest.mark.parametrize('shape', [(2, 5, 9, 10), (2, 4, 9, 11), (2, 4, 10, 10), (4, 9, 10)])
@pytest.mark.parametrize('deploy', [False, True])
def test_wrong_input_names_expected_and_actual_shape(shape, deploy):
    block = make_block(deploy=deploy)
    with pytest.raises(ValueError) as info:
        block(torch.randn(*shape, dtype=torch.float64))
    assert '(N, 4, 9, 10)' in str(info.value) and str(shape) in str(info.value)


def test_repmlp1d_wrong_input_and_bad_kernels():
    block = RepMLP1d(4, 4, in_length=10, partition_length=4, local_kernels=(1, 3))
    with pytest.raises(ValueError, match=r'\(N, 4, 10\) but got \(2, 4, 12\)'):
        block(torch.randn(2, 4, 12))
    with pytest.raises(TypeError, match='local_kernels must be an int'):
        RepMLP1d(4, 4, in_length=10, partition_length=4, local_kernels=((1, 3), ))
    with pytest.raises(ValueError, match='larger than the partition'):
        RepMLP1d(4, 4, in_length=10, partition_length=4, local_kernels=(5, ))


# ------------------------------------------------------------------------------ conversion
@pytest.mark.parametrize('in_size, partition', [((8, 10), (4, 5)), ((9, 11), (4, 5)),
                                                 ((5, 5), (5, 5)), ((7, 3), (3, 3))])
def test_conversion_is_exact_in_float64(in_size, partition):
    block = make_block(in_size=in_size, partition_size=partition, local_kernels=(1, 3),
                       fc1_fc2_reduction=2 if in_size != partition else 1)
    x = torch.randn(3, 4, *in_size, dtype=torch.float64)
    max_abs, max_rel, deployed = deploy_difference(block, x)
    assert max_rel < 1e-12
    assert deployed.deploy and not hasattr(deployed, 'fc3_bn')
    assert deployed(x).shape == (3, 6, *in_size)


def test_padding_semantics_are_zero_padding_then_crop():
    """A non-divisible input behaves like the zero-padded input through a padded-size block."""
    block = make_block(in_size=(9, 10), partition_size=(4, 5), local_kernels=(1, 3)).eval()
    padded = make_block(in_size=(12, 10), partition_size=(4, 5), local_kernels=(1, 3)).eval()
    padded.load_state_dict(block.state_dict())
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    expected = padded(torch.nn.functional.pad(x, (0, 0, 0, 3)))[:, :, :9]
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)


def test_deploy_construction_strict_loads_a_converted_state_dict():
    block = make_block(fc1_fc2_reduction=2)
    converted = repmlp_model_convert(block)
    fresh = make_block(fc1_fc2_reduction=2, deploy=True, seed=1)
    assert set(fresh.state_dict()) == set(converted.state_dict())
    fresh.load_state_dict(converted.state_dict(), strict=True)
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(fresh.eval()(x), converted.eval()(x), rtol=0, atol=0)
    with pytest.raises(RuntimeError):
        fresh.load_state_dict(block.state_dict(), strict=True)


def test_switch_to_deploy_is_idempotent():
    block = make_block()
    block.switch_to_deploy()
    state = copy.deepcopy(block.state_dict())
    block.switch_to_deploy()
    assert block.state_dict().keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(block.state_dict()[key], value)


def test_switch_to_deploy_in_train_mode_uses_running_stats():
    block = make_block().train()
    x = torch.randn(4, 4, 9, 10, dtype=torch.float64)
    block(x)  # a training step moves the running statistics
    expected = copy.deepcopy(block).eval()(x)
    block.switch_to_deploy()
    assert block.training
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=1e-12)


def test_equivalent_params_match_the_deploy_form_and_have_gradients():
    block = make_block()
    fc1_w, fc1_b, fc3_w, fc3_b = block.get_equivalent_fc1_fc3_params()
    assert fc3_w.requires_grad and fc1_w.requires_grad
    (fc3_w.sum() + fc1_b.sum()).backward()
    assert block.local_perceptron['conv3x3'].conv.weight.grad.abs().sum() > 0
    assert block.fc1.weight.grad is not None
    deployed = repmlp_model_convert(block)
    # The deploy form stores them partition-major and gives them back channel-major.
    for deploy_param, param in zip(deployed.get_equivalent_fc1_fc3_params(),
                                   (fc1_w, fc1_b, fc3_w, fc3_b)):
        assert torch.equal(deploy_param, param.detach())
    (_, _, (fc3_deploy_w, _)) = block.get_deploy_fcs()
    assert torch.equal(deployed.fc3.weight, fc3_deploy_w.detach())
    assert not torch.equal(deployed.fc3.weight, fc3_w.detach())


def test_equivalent_params_without_global_perceptron():
    block = make_block(with_global=False)
    fc1_w, fc1_b, fc3_w, fc3_b = block.get_equivalent_fc1_fc3_params()
    assert fc1_w is None and fc1_b is None and fc3_w.shape == (6 * 20, 4 * 20 // 2)


@pytest.mark.parametrize('case', [
    dict(),
    dict(with_global=False),
    dict(larger_input='windows', input_size=(13, 23)),
    dict(one_d=True),
])
def test_forward_with_the_equivalent_fcs_is_the_forward(case):
    """forward_with_fcs runs the deploy computation with the FCs it is given: with the
    equivalent ones, the block's function, differentiably."""
    case = dict(case)
    input_size, one_d = case.pop('input_size', (9, 10)), case.pop('one_d', False)
    if one_d:
        torch.manual_seed(0)
        block = randomize_norm_layers(RepMLP1d(4, 6, in_length=13, partition_length=4, groups=2,
                                               local_kernels=(1, 3)).double()).eval()
        x = torch.randn(2, 4, 13, dtype=torch.float64)
    else:
        block = make_block(**case).eval()
        x = torch.randn(2, 4, *input_size, dtype=torch.float64)
    out = block.forward_with_fcs(x, *block.get_deploy_fcs())

    torch.testing.assert_close(out, block(x), rtol=1e-12, atol=1e-12)
    out.sum().backward()
    assert all(branch.conv.weight.grad.abs().sum() > 0
               for branch in block.local_perceptron.values())


def test_gradcheck_through_equivalent_params():
    block = make_block(in_channels=2, out_channels=2, in_size=(4, 6), partition_size=(2, 3),
                       groups=2, local_kernels=(1, (1, 3)))
    names = [name for name, t in block.state_dict().items() if t.is_floating_point()]
    tensors = tuple(block.state_dict()[n].clone().requires_grad_() for n in names)

    class Equivalent(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.block = block

        def forward(self):
            return self.block.get_equivalent_fc1_fc3_params()

    wrapper = Equivalent()

    def equivalent(*values):
        params = {f'block.{n}': v for n, v in zip(names, values)}
        return functional_call(wrapper, params, ())

    assert torch.autograd.gradcheck(equivalent, tensors, fast_mode=True)


# ------------------------------------------------- the reference implementations agree
@pytest.mark.parametrize('groups', [1, 2])
@pytest.mark.parametrize('deploy', [False, True])
def test_matmul_and_grouped_conv_fc3_agree(groups, deploy):
    matmul = make_block(dtype=torch.float32, groups=groups, deploy=deploy).eval()
    conv = references.use_conv_fc3(
        make_block(dtype=torch.float32, groups=groups, deploy=deploy)).eval()
    conv.load_state_dict(matmul.state_dict())
    x = torch.randn(3, 4, 9, 10)
    assert relative_difference(matmul(x), conv(x)) <= 1e-5


@pytest.mark.parametrize('momentum', [0.1, None])
@pytest.mark.parametrize('groups', [1, 2])
def test_fused_and_per_branch_local_agree_in_training(momentum, groups):
    norm_cfg = dict(type='BN', momentum=momentum)
    per_branch = make_block(groups=groups, norm_cfg=norm_cfg).train()
    fused = references.use_fused_local_perceptron(
        make_block(groups=groups, norm_cfg=norm_cfg)).train()
    fused.load_state_dict(per_branch.state_dict())
    initial = copy.deepcopy(per_branch.state_dict())
    for _ in range(2):
        x = torch.randn(3, 4, 9, 10, dtype=torch.float64)
        out_branch, out_fused = per_branch(x), fused(x)
        torch.testing.assert_close(out_fused, out_branch, rtol=1e-12, atol=1e-12)
        grad = torch.randn_like(out_branch)
        per_branch.zero_grad()
        fused.zero_grad()
        out_branch.backward(grad)
        out_fused.backward(grad)
    fused_params = dict(fused.named_parameters())
    for name, param in per_branch.named_parameters():
        torch.testing.assert_close(fused_params[name].grad, param.grad, rtol=1e-10,
                                   atol=1e-12, msg=name)
    fused_buffers = dict(fused.named_buffers())
    for name, buffer in per_branch.named_buffers():
        assert not torch.equal(buffer, initial[name]), f'{name} was not updated'
        torch.testing.assert_close(fused_buffers[name], buffer, rtol=1e-12, atol=1e-12,
                                   msg=name)
    assert int(fused.local_perceptron['conv3x3'].bn.num_batches_tracked) == 2


def test_fused_and_per_branch_local_agree_in_eval():
    per_branch = make_block().eval()
    fused = references.use_fused_local_perceptron(make_block()).eval()
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(fused(x), per_branch(x), rtol=1e-12, atol=1e-12)
    assert all(int(bn.num_batches_tracked) == 0 for bn in fused.modules()
               if isinstance(bn, torch.nn.BatchNorm2d))


def test_fused_local_perceptron_needs_plain_batch_norm():
    with pytest.raises(ValueError, match="type 'BN'"):
        references.use_fused_local_perceptron(make_block(norm_cfg=dict(type='SyncBN')))


# ------------------------------------------------------------------------------ RepMLP1d
@pytest.mark.parametrize('length, partition, groups', [(12, 4, 1), (13, 4, 2), (5, 5, 2),
                                                       (7, 3, 1)])
@pytest.mark.parametrize('dtype, tolerance', [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_repmlp1d_converts_exactly(length, partition, groups, dtype, tolerance):
    torch.manual_seed(0)
    block = randomize_norm_layers(
        RepMLP1d(4, 6, in_length=length, partition_length=partition, groups=groups,
                 local_kernels=(1, 3)).to(dtype))
    x = torch.randn(2, 4, length, dtype=dtype)
    assert block(x).shape == (2, 6, length)
    max_abs, max_rel, deployed = deploy_difference(block, x)
    assert max_rel <= tolerance
    assert deployed(x).shape == (2, 6, length)


def test_repmlp1d_matches_a_direct_1d_computation():
    torch.manual_seed(0)
    block = randomize_norm_layers(
        RepMLP1d(2, 4, in_length=8, partition_length=4, groups=2, local_kernels=(1, 3),
                 with_global=False)).eval()
    x = torch.randn(3, 2, 8)
    parts = x.reshape(3, 2, 2, 4).permute(0, 2, 1, 3).reshape(6, 2, 4)  # (N * 2, C, l)
    out = block.fc3_bn(block.fc3(parts.reshape(6, 8))).reshape(6, 4, 4)
    for k in (1, 3):
        branch = block.local_perceptron[f'conv1x{k}']
        conv = torch.nn.functional.conv1d(parts, branch.conv.weight.squeeze(2),
                                          padding=k // 2, groups=2)
        out = out + branch.bn(conv.unsqueeze(2)).squeeze(2)
    expected = out.reshape(3, 2, 4, 4).permute(0, 2, 1, 3).reshape(3, 4, 8)
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_repmlp1d_deploy_construction_strict_loads_and_fused_local_agrees():
    torch.manual_seed(0)
    block = references.use_fused_local_perceptron(randomize_norm_layers(
        RepMLP1d(4, 4, in_length=10, partition_length=4, groups=2,
                 local_kernels=(1, 3)).double())).eval()
    per_branch = RepMLP1d(4, 4, in_length=10, partition_length=4, groups=2,
                          local_kernels=(1, 3)).double().eval()
    per_branch.load_state_dict(block.state_dict())
    x = torch.randn(2, 4, 10, dtype=torch.float64)
    torch.testing.assert_close(block(x), per_branch(x), rtol=1e-12, atol=1e-12)
    fresh = RepMLP1d(4, 4, in_length=10, partition_length=4, groups=2, local_kernels=(1, 3),
                     deploy=True).double()
    fresh.load_state_dict(repmlp_model_convert(block).state_dict(), strict=True)
    torch.testing.assert_close(fresh(x), block(x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ windows
def test_other_sizes_are_an_error_unless_windows_are_asked_for():
    block = make_block(in_size=(8, 10), partition_size=(4, 5)).eval()
    with pytest.raises(ValueError, match="larger_input='windows'"):
        block(torch.randn(1, 4, 16, 20))


@pytest.mark.parametrize('size', [(8, 10), (17, 23), (5, 7)])
def test_windows_run_each_padded_window_independently_in_both_forms(size):
    block = make_block(in_size=(8, 10), partition_size=(4, 5), larger_input='windows').eval()
    x = torch.randn(2, 4, *size, dtype=torch.float64)

    out = block(x)

    H, W = size
    padded = torch.nn.functional.pad(x, (0, -W % 10, 0, -H % 8))
    for i in range(0, padded.shape[2], 8):
        for j in range(0, padded.shape[3], 10):
            window = block(padded[:, :, i:i + 8, j:j + 10])
            expected = window[:, :, :max(0, min(8, H - i)), :max(0, min(10, W - j))]
            torch.testing.assert_close(out[:, :, i:i + 8, j:j + 10], expected)
    deployed = repmlp_model_convert(block)
    torch.testing.assert_close(deployed(x), out, rtol=1e-10, atol=1e-10)
