"""Property: a correct combination of constructor arguments of the block or the backbone builds
a model whose forward runs on its declared input size and gives outputs of the expected
shapes; the same combination with one argument given one of its typical mistakes raises
ValueError or TypeError whose message names that argument as a whole word.

The strategies draw correct configurations by construction (groups that divide the channels,
partitions that fit the feature maps, kernels that fit the partitions, reductions that divide
FC1's input); the mistakes include combinations that do not fit together (groups that divide
no channel count, a partition larger than the input, a kernel larger than the partition),
and every mistake is applied, alone, to each drawn correct configuration. An error raised
for a correct configuration fails the test, and each test checks how many examples it ran.
"""
import math
import re

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrepmlp.models import RepMLPBlock, RepMLPResNet

# Correct configs drawn per test, each of which must build and run; correct configs to which
# every mistake is applied in turn, and the floor on the mistakes checked: the counts keep the
# properties from passing without checking anything.
CORRECT_EXAMPLES, MISTAKE_EXAMPLES, MIN_MISTAKES = 60, 15, 800
# derandomize: CI draws the same examples every run, so a red run can be rerun and a green
# one stays green; widen the example counts locally to search further.
SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
NORMS = [dict(type='BN'), dict(type='SyncBN')]
# None is the backbone's default (BN), but no norm config for the block.
BACKBONE_BAD_NORMS = [dict(type='LN'), dict(type='GN', num_groups=1), dict(type='Bogus'), 'BN']
BAD_NORMS = [*BACKBONE_BAD_NORMS, None]
BAD_INTS = [0, -3, 4.0, '4', True, None]
BAD_FLAGS = ['no', 0, 1, None]


def names_as_word(message, name):
    """Whether ``name`` occurs in ``message`` as a whole word (``r`` is not in ``arch``,
    ``groups`` is not in ``num_groups``)."""
    return re.search(rf'(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])', message) is not None


def with_mistake(kwargs, where, value):
    """A copy of ``kwargs`` with ``value`` at ``where`` (a name, or ``('arch', key)``)."""
    kwargs = dict(kwargs, arch=dict(kwargs['arch'])) if 'arch' in kwargs else dict(kwargs)
    if isinstance(where, tuple):
        kwargs['arch'][where[1]] = value
    else:
        kwargs[where] = value
    return kwargs


def assert_every_mistake_named(cls, kwargs, mistakes):
    """Each mistake of ``mistakes`` (``where -> (values, names the error may use)``) applied
    alone to the correct ``kwargs`` raises ValueError/TypeError naming the argument as a whole
    word. Returns how many were checked."""
    checked = 0
    for where, (values, names) in mistakes.items():
        for value in values:
            try:
                cls(**with_mistake(kwargs, where, value))
            except (ValueError, TypeError) as error:
                assert any(names_as_word(str(error), name) for name in names), \
                    f'{type(error).__name__}: {error} (mistake {where}={value!r})'
            else:
                raise AssertionError(f'{where}={value!r} was accepted (correct config {kwargs})')
            checked += 1
    return checked


def run_property(strategy, check, max_examples):
    """Run ``check`` on ``max_examples`` derandomized examples; the sum of its results."""
    total = []

    @settings(SETTINGS, max_examples=max_examples)
    @given(strategy)
    def each_example(example):
        total.append(check(example))

    each_example()
    return sum(total)


# ------------------------------------------------------------------------------ the block
def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def block_arguments(draw):
    """``(correct kwargs, mistakes)``: mistakes map an argument (``('arch', key)`` for an arch
    key) to its mistaken values and the names an error may use for it."""
    groups = draw(st.sampled_from([1, 2, 3]))
    in_channels = groups * draw(st.sampled_from([1, 2, 3]))
    out_channels = groups * draw(st.sampled_from([1, 2, 3]))
    H, W = draw(st.integers(4, 12)), draw(st.integers(4, 12))
    h, w = draw(st.integers(2, H)), draw(st.integers(2, W))
    kernels = [(kh, kw) for kh in (1, 3, 5) for kw in (1, 3, 5) if kh <= h and kw <= w]
    kernels = draw(st.lists(st.sampled_from(kernels), max_size=3, unique=True))
    global_size = in_channels * math.ceil(H / h) * math.ceil(W / w)
    kwargs = dict(
        # integral numpy values are ints too (sizes are often computed)
        in_channels=draw(st.sampled_from([in_channels, np.int64(in_channels)])),
        out_channels=out_channels,
        in_size=H if H == W and draw(st.booleans()) else (H, W),
        partition_size=h if h == w and draw(st.booleans()) else (h, w),
        groups=groups,
        local_kernels=tuple(kh if kh == kw and draw(st.booleans()) else (kh, kw)
                            for kh, kw in kernels),
        fc1_fc2_reduction=draw(st.sampled_from(divisors(global_size))),
        with_global=draw(st.booleans()),
        norm_cfg=draw(st.sampled_from(NORMS)),
        larger_input=draw(st.sampled_from(['error', 'windows'])),
        deploy=draw(st.booleans()))
    has_global = kwargs['with_global'] and global_size != in_channels
    mistakes = {
        'in_channels': BAD_INTS, 'out_channels': BAD_INTS, 'groups': BAD_INTS,
        'fc1_fc2_reduction': BAD_INTS,
        'in_size': [12.0, (4, 4, 4), (4, -1), None, (h - 1, W)],
        'partition_size': [0, 2.5, (2, ), 'x', (H + 1, w)],
        'local_kernels': [None, 3, (2, ), (1, 1), ((h + 1 + h % 2, 1), )],  # odd, > h
        'with_global': BAD_FLAGS, 'deploy': BAD_FLAGS, 'norm_cfg': BAD_NORMS,
        'larger_input': ['crop', None],
    }
    # combinations that do not fit: groups dividing neither channel count, a reduction that
    # does not divide FC1's input (only checked where there is a Global Perceptron)
    mistakes['groups'] = mistakes['groups'] + [in_channels + out_channels + 1]
    if has_global:
        mistakes['fc1_fc2_reduction'] = mistakes['fc1_fc2_reduction'] + [global_size + 1]
    return kwargs, {name: (values, [name]) for name, values in mistakes.items()}


def run_block(block):
    H, W = block.in_size
    x = torch.randn(2, block.in_channels, H, W)
    out = block.eval()(x)
    assert out.shape == (2, block.out_channels, H, W)
    assert torch.isfinite(out).all()
    if block.larger_input == 'windows':  # a larger map runs as windows of in_size
        larger = block(torch.randn(1, block.in_channels, H + 3, W + 1))
        assert larger.shape == (1, block.out_channels, H + 3, W + 1)


def test_every_correct_block_config_builds_and_runs():
    def check(example):
        run_block(RepMLPBlock(**example[0]))  # any error is a correct config refused
        return 1

    assert run_property(block_arguments(), check, CORRECT_EXAMPLES) >= CORRECT_EXAMPLES


def test_every_block_mistake_is_refused_naming_its_argument():
    def check(example):
        return assert_every_mistake_named(RepMLPBlock, *example)

    assert run_property(block_arguments(), check, MISTAKE_EXAMPLES) >= MIN_MISTAKES


# --------------------------------------------------------------------------- the backbone
WIDTHS = (16, 32, 64, 128)
NUM_BLOCKS = (1, 2, 2, 1)  # stages 2 and 3 have a stride-1 block, which can be a RepMLP one


def stem_size(size):
    """The stem conv and the max-pool both halve the size, rounding up."""
    return math.ceil(math.ceil(size / 2) / 2)


def feature_sizes(img_size, strides):
    """``(H, W)`` of every stage's output."""
    sizes, size = [], tuple(stem_size(s) for s in img_size)
    for stride in strides:
        size = tuple(math.ceil(s / stride) for s in size)
        sizes.append(size)
    return sizes


@st.composite
def backbone_arguments(draw):
    """``(correct kwargs, mistakes)``: mistakes map an argument (``('arch', key)`` for an arch
    key) to its mistaken values and the names an error may use for it."""
    img_size = draw(st.sampled_from([48, 64, (48, 64)]))
    strides = draw(st.sampled_from([None, (1, 2, 2, 2), (1, 2, 1, 1)]))
    pair = img_size if isinstance(img_size, tuple) else (img_size, img_size)
    sizes = feature_sizes(pair, strides or (1, 2, 2, 2))
    block_type = draw(st.sampled_from([('base', 'bottleneck', 'light', 'base'),
                                       ('base', 'light', 'light', 'base'), 'base']))
    expansion, r = draw(st.sampled_from([4, 2, 1])), draw(st.sampled_from([1, 2]))
    types = [block_type] * 4 if isinstance(block_type, str) else list(block_type)
    repmlp_stages = [i for i, kind in enumerate(types) if kind != 'base' and NUM_BLOCKS[i] > 1]
    repmlp_channels = [WIDTHS[i] // expansion // r if types[i] == 'bottleneck'
                       else WIDTHS[i] // 8 for i in repmlp_stages]
    groups = draw(st.sampled_from([g for g in (1, 2, 4) if all(c % g == 0
                                                               for c in repmlp_channels)]))
    smallest = min((min(sizes[i]) for i in repmlp_stages), default=4)
    kernels = draw(st.sampled_from([k for k in [(1, 3), (1, ), ()] if max(k, default=1)
                                    <= smallest]))
    largest_kernel = max(kernels, default=1)
    # per stage: an int, or an (h, w) pair that fits the stage's map (any size where no RepMLP)
    partition = [(draw(st.integers(largest_kernel, sizes[i][0])),
                  draw(st.integers(largest_kernel, sizes[i][1]))) if i in repmlp_stages
                 else draw(st.integers(1, 4)) for i in range(4)]
    if draw(st.booleans()):  # one int for every stage, where it fits all of them
        side = draw(st.integers(largest_kernel, smallest))
        partition = side
    arch = dict(num_blocks=NUM_BLOCKS, widths=WIDTHS, block_type=block_type, r=r,
                groups=groups, partition=partition, local_kernels=kernels, expansion=expansion)
    kwargs = dict(
        arch=arch, img_size=img_size, strides=strides,
        in_channels=draw(st.sampled_from([1, 3])), deep_stem=draw(st.booleans()),
        out_indices=draw(st.sampled_from([(0, 1, 2, 3), (-1, ), 3, (1, -2)])),
        dilations=draw(st.sampled_from([None, (1, 1, 2, 4)])),
        contract_dilation=draw(st.booleans()), frozen_stages=draw(st.integers(-1, 4)),
        norm_eval=draw(st.booleans()), norm_cfg=draw(st.sampled_from([None, *NORMS])),
        with_cp=draw(st.booleans()), deploy=draw(st.booleans()))
    mistakes = {
        'img_size': [64.0, (32, ), 0], 'in_channels': BAD_INTS, 'deep_stem': BAD_FLAGS,
        'out_indices': [(4, ), (), (0.0, ), '0', (-5, )],
        'strides': ['1222', (1, 2, 2), (1, 0, 2, 2)],
        'dilations': [(1, 1, 0, 1), 2], 'contract_dilation': BAD_FLAGS,
        'frozen_stages': [-2, 5, 1.0], 'norm_eval': BAD_FLAGS, 'norm_cfg': BACKBONE_BAD_NORMS,
        'with_cp': BAD_FLAGS, 'deploy': BAD_FLAGS,
    }
    arch_mistakes = {'widths': [(16, '32', 64, 128), (16, -32, 64, 128), (16, 32, 64)],
                     'num_blocks': [(1, 0, 2, 1), (1, 2.0, 2, 1)], 'block_type': ['conv'],
                     'r': [0, 2.0], 'groups': [0], 'expansion': [0, 'x', 3],
                     'partition': [0, 'x']}
    if repmlp_stages:  # combinations that do not fit the RepMLP blocks
        arch_mistakes['groups'] = [0, 3]
        arch_mistakes['partition'] = [0, 'x', max(sizes[i][0] for i in repmlp_stages) + 1]
        arch_mistakes['local_kernels'] = [(2, ), (1, 1)]
        stage_partitions = [partition if isinstance(partition, int) else max(partition[i])
                            for i in repmlp_stages]
        if max(stage_partitions) > 1:  # a 4x4 image leaves 1x1 maps, smaller than that
            mistakes['img_size'] = mistakes['img_size'] + [4]
    if 'bottleneck' in [types[i] for i in repmlp_stages]:  # r divides a bottleneck's width
        arch_mistakes['r'] = [0, 2.0, 3]
    # the error may name the block's argument for the arch key or the input that sized it
    accepted = dict(partition=['partition', 'partition_size'],
                    img_size=['img_size', 'in_size'])
    table = {name: (values, accepted.get(name, [name])) for name, values in mistakes.items()}
    table.update({('arch', name): (values, accepted.get(name, [name]))
                  for name, values in arch_mistakes.items()})
    return kwargs, table


def run_backbone(kwargs):
    def run(model):
        img_size = kwargs['img_size']
        pair = img_size if isinstance(img_size, tuple) else (img_size, img_size)
        outs = model.eval()(torch.randn(1, kwargs['in_channels'], *pair))
        sizes = feature_sizes(pair, kwargs['strides'] or (1, 2, 2, 2))
        assert [tuple(out.shape) for out in outs] == [(1, WIDTHS[i], *sizes[i])
                                                      for i in model.out_indices]
        assert all(torch.isfinite(out).all() for out in outs)
    return run


def test_every_correct_backbone_config_builds_and_runs():
    def check(example):
        kwargs = example[0]
        run_backbone(kwargs)(RepMLPResNet(**kwargs))  # any error is a correct config refused
        return 1

    assert run_property(backbone_arguments(), check, CORRECT_EXAMPLES) >= CORRECT_EXAMPLES


def test_every_backbone_mistake_is_refused_naming_its_argument():
    def check(example):
        return assert_every_mistake_named(RepMLPResNet, *example)

    assert run_property(backbone_arguments(), check, MISTAKE_EXAMPLES) >= MIN_MISTAKES
