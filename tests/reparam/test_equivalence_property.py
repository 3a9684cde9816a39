"""Property-based: over random block configs, the deploy form computes the training form.

Configs cover in != out channels, groups, partitions of any (also non-square) size, input
sizes divisible by the partition or not, kernel sets with non-square kernels (or none),
FC1/FC2 reductions, with and without the Global Perceptron, batch 1 and more, the block's FC3
and Local Perceptron or their reference implementations (``benchmarks/block_references.py``).
Every BN gets random statistics and affine params.
"""
import math

import pytest
import torch
from helpers_tools import load_script, relative_difference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrepmlp.models.blocks import RepMLPBlock
from mmrepmlp.reparam import randomize_norm_layers, repmlp_model_convert

references = load_script('benchmarks/block_references.py')
REFERENCES = {'conv_fc3': references.use_conv_fc3,
              'fused_local': references.use_fused_local_perceptron}

# Deterministic examples (CI must not flake) and small sizes (the file runs in seconds).
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def block_configs(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    # sampled_from draws uniformly (integers() favours the smallest values).
    h, w = draw(st.sampled_from([3, 4, 5, 1, 2])), draw(st.sampled_from([3, 4, 5, 1, 2]))

    def input_size(part):
        num_parts = draw(st.sampled_from([2, 3, 1]))
        # A non-divisible size needs at least two partitions to stay >= the partition.
        cut = draw(st.integers(0, part - 1)) if num_parts > 1 else 0
        return part * num_parts - cut

    H, W = input_size(h), input_size(w)
    candidates = [(kh, kw) for kh in (1, 3, 5) for kw in (1, 3, 5) if kh <= h and kw <= w]
    num_kernels = min(draw(st.sampled_from([1, 2, 3, 0])), len(candidates))
    kernels = draw(st.lists(st.sampled_from(candidates), min_size=num_kernels,
                            max_size=num_kernels, unique=True))
    in_channels = groups * draw(st.sampled_from([1, 2, 3]))
    global_size = in_channels * math.ceil(H / h) * math.ceil(W / w)
    divisors = [d for d in range(1, global_size + 1) if global_size % d == 0]
    cfg = dict(in_channels=in_channels, out_channels=groups * draw(st.sampled_from([1, 2, 3])),
               in_size=(H, W), partition_size=(h, w), groups=groups, local_kernels=kernels,
               fc1_fc2_reduction=draw(st.sampled_from(divisors)),
               with_global=draw(st.sampled_from([True, False])),
               references=draw(st.sets(st.sampled_from(sorted(REFERENCES)))))
    return cfg, draw(st.sampled_from([2, 1, 3])), draw(st.integers(0, 2**16))


def build(cfg, seed, dtype):
    """The block of ``cfg``, with the reference implementations it names."""
    cfg = dict(cfg)
    uses = [REFERENCES[name] for name in sorted(cfg.pop('references'))]
    torch.manual_seed(seed)
    block = RepMLPBlock(**cfg)
    for use_reference in uses:
        use_reference(block)
    return randomize_norm_layers(block, seed=seed).to(dtype).eval()


def max_relative_error(actual, expected):
    return relative_difference(actual.double(), expected.double())


@pytest.mark.parametrize('dtype, tolerance', [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@settings(max_examples=30, **SETTINGS)
@given(config=block_configs())
def test_deploy_equals_training_form(config, dtype, tolerance):
    cfg, batch, seed = config
    block = build(cfg, seed, dtype)
    x = torch.randn(batch, cfg['in_channels'], *cfg['in_size'], dtype=dtype)
    with torch.no_grad():
        expected = block(x)
        deployed = repmlp_model_convert(block)
        actual = deployed(x)
    assert actual.shape == (batch, cfg['out_channels'], *cfg['in_size'])
    assert deployed.fc3.weight.dtype == dtype
    assert max_relative_error(actual, expected) <= tolerance


# The unit roundoff u of each half format (8 and 11 significant bits). A deploy output is a
# sum of products whose factors carry the rounding of the input (1 u) and of the training
# weights (1 u) plus, on a fused weight, the conversion's own roundings in that format (the
# BN scale and shift and the sum of up to four branch kernels into FC3: at most 6 u); the
# product sums accumulate in float32 and round once, then the bias and the Global
# Perceptron's term add two more: 11 u on each term. Relative to the largest output rather
# than to each output's sum of absolute terms, cancellation can add a little: 16 u, i.e.
# 2**-4 (bf16) and 2**-7 (fp16). The largest seen over 200 drawn configs: 4.9 u and 7.7 u.
UNIT_ROUNDOFF = {torch.bfloat16: 2**-8, torch.float16: 2**-11}


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@settings(max_examples=12, **SETTINGS)
@given(config=block_configs())
def test_conversion_runs_in_half_precision(config, dtype):
    cfg, batch, seed = config
    reference = build(cfg, seed, torch.float64)
    block = build(cfg, seed, dtype)
    x = torch.randn(batch, cfg['in_channels'], *cfg['in_size'], dtype=torch.float64)
    with torch.no_grad():
        expected = reference(x)
        deployed = repmlp_model_convert(block)
        actual = deployed(x.to(dtype))
    assert deployed.fc3.weight.dtype == dtype and actual.dtype == dtype
    assert max_relative_error(actual, expected) <= 16 * UNIT_ROUNDOFF[dtype]
