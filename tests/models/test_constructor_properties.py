"""Property: every combination of constructor arguments of the block and the backbone either
builds a model whose forward runs on its declared input size, or raises ValueError or
TypeError naming one of the arguments; never anything else, and never a model that fails
later.

Each example is a plausible configuration (combinations that do not fit together, such as
groups that do not divide the channels, are part of it), and in about half of them one
argument gets one of its typical mistakes; then the error must name that argument.
"""
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrepmlp.models import RepMLPBlock, RepMLPResNet

# derandomize: CI draws the same examples every run, so a red run can be rerun and a green
# one stays green; widen max_examples locally to search further.
SETTINGS = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
NORMS = [dict(type='BN'), dict(type='SyncBN')]
# None is the backbone's default (BN), but no norm config for the block.
BACKBONE_BAD_NORMS = [dict(type='LN'), dict(type='GN', num_groups=1), dict(type='Bogus'), 'BN']
BAD_NORMS = [*BACKBONE_BAD_NORMS, None]
BAD_INTS = [0, -3, 4.0, '4', True, None]
BAD_FLAGS = ['no', 0, 1, None]


@st.composite
def block_arguments(draw):
    in_size = (draw(st.integers(4, 12)), draw(st.integers(4, 12)))
    partition = (draw(st.integers(2, in_size[0])), draw(st.integers(2, in_size[1])))
    odd = [k for k in (1, 3, 5) if k <= min(partition)]
    kwargs = dict(
        in_channels=draw(st.sampled_from([2, 4, 6, np.int64(4)])),
        out_channels=draw(st.sampled_from([2, 4, 8])),
        in_size=in_size if draw(st.booleans()) else in_size[0],
        partition_size=partition if in_size[0] == in_size[1] or draw(st.booleans())
        else partition,
        groups=draw(st.sampled_from([1, 2, 3])),
        local_kernels=tuple(draw(st.sets(st.sampled_from(odd), max_size=3))),
        fc1_fc2_reduction=draw(st.sampled_from([1, 2, 5])),
        with_global=draw(st.booleans()),
        norm_cfg=draw(st.sampled_from(NORMS)),
        larger_input=draw(st.sampled_from(['error', 'windows'])),
        deploy=draw(st.booleans()))
    if not isinstance(kwargs['in_size'], tuple):
        kwargs['partition_size'] = partition[0]
    correct = dict(kwargs)
    mistakes = {
        'in_channels': BAD_INTS, 'out_channels': BAD_INTS, 'groups': BAD_INTS,
        'fc1_fc2_reduction': BAD_INTS, 'in_size': [12.0, (4, 4, 4), (4, -1), None],
        'partition_size': [0, 2.5, (2, ), 'x'], 'local_kernels': [None, 3, (2, ), (1, 1)],
        'with_global': BAD_FLAGS, 'deploy': BAD_FLAGS, 'norm_cfg': BAD_NORMS,
        'larger_input': ['crop'],
    }
    return (*_with_mistake(draw, kwargs, mistakes), correct)


def _with_mistake(draw, kwargs, mistakes):
    """``(kwargs, the argument given a mistake or None)``."""
    if draw(st.booleans()):
        return kwargs, None
    name = draw(st.sampled_from(sorted(mistakes)))
    kwargs[name] = draw(st.sampled_from(mistakes[name]))
    return kwargs, name


def _built(cls, kwargs):
    try:
        return cls(**kwargs), None
    except (ValueError, TypeError) as error:
        names = set(kwargs) | set(kwargs.get('arch') or {})
        assert any(name in str(error) for name in names), f'{type(error).__name__}: {error}'
        return None, error


def build_or_named_error(cls, kwargs, mistake, correct=None):
    """The model, or None after checking that the error names an argument: the one given a
    mistake when the ``correct`` arguments (without it) build."""
    model, error = _built(cls, kwargs)
    if mistake is not None and _built(cls, correct)[0] is not None:
        assert error is not None, f'{mistake}={kwargs[mistake]!r} was accepted'
        assert mistake in str(error), f'{type(error).__name__}: {error} (mistake in ' \
                                      f'{mistake}={kwargs[mistake]!r})'
    return model


@SETTINGS
@given(block_arguments())
def test_repmlp_block_builds_and_runs_or_names_the_argument(example):
    kwargs, mistake, correct = example
    block = build_or_named_error(RepMLPBlock, kwargs, mistake, correct)
    if block is None:
        return
    x = torch.randn(2, block.in_channels, *block.in_size)
    out = block.eval()(x)
    assert out.shape == (2, block.out_channels, *block.in_size)
    assert torch.isfinite(out).all()


@st.composite
def backbone_arguments(draw):
    arch = dict(
        num_blocks=(1, 2, 2, 1), widths=(16, 32, 64, 128),
        block_type=draw(st.sampled_from([('base', 'bottleneck', 'light', 'base'),
                                         ('base', 'light', 'light', 'base'), 'base'])),
        r=draw(st.sampled_from([1, 2])), groups=draw(st.sampled_from([1, 2, 3])),
        partition=draw(st.sampled_from([2, 4, [4, (4, 2), 4, 2]])),
        local_kernels=draw(st.sampled_from([(1, 3), (1, ), ()])),
        expansion=draw(st.sampled_from([4, 2, 1])))
    kwargs = dict(
        arch=arch, img_size=draw(st.sampled_from([32, 48, (32, 48)])),
        in_channels=draw(st.sampled_from([1, 3])), deep_stem=draw(st.booleans()),
        out_indices=draw(st.sampled_from([(0, 1, 2, 3), (-1, ), 3])),
        strides=draw(st.sampled_from([None, (1, 2, 2, 2), (1, 2, 1, 1)])),
        dilations=draw(st.sampled_from([None, (1, 1, 2, 4)])),
        contract_dilation=draw(st.booleans()), frozen_stages=draw(st.integers(-1, 4)),
        norm_eval=draw(st.booleans()), norm_cfg=draw(st.sampled_from(NORMS)),
        with_cp=draw(st.booleans()), deploy=draw(st.booleans()))
    correct = dict(kwargs, arch=dict(arch))
    mistakes = {
        'img_size': [64.0, (32, ), 0], 'in_channels': BAD_INTS, 'deep_stem': BAD_FLAGS,
        'out_indices': [(4, ), (), (0.0, ), '0'], 'strides': ['1222', (1, 2, 2), (1, 0, 2, 2)],
        'dilations': [(1, 1, 0, 1), 2], 'contract_dilation': BAD_FLAGS,
        'frozen_stages': [-2, 5, 1.0], 'norm_eval': BAD_FLAGS, 'norm_cfg': BACKBONE_BAD_NORMS,
        'with_cp': BAD_FLAGS, 'deploy': BAD_FLAGS,
    }
    arch_mistakes = {'widths': [(16, '32', 64, 128), (16, -32, 64, 128), (16, 32, 64)],
                     'num_blocks': [(1, 0, 2, 1), (1, 2.0, 2, 1)], 'block_type': ['conv'],
                     'r': [0, 2.0], 'groups': [0], 'expansion': [0, 'x'],
                     'partition': [0, 'x']}
    kwargs, mistake = _with_mistake(draw, kwargs, mistakes)
    if mistake is None and draw(st.integers(0, 2)) == 0:
        name = draw(st.sampled_from(sorted(arch_mistakes)))
        arch[name] = draw(st.sampled_from(arch_mistakes[name]))
        mistake = name
    return kwargs, mistake, correct


@SETTINGS
@given(backbone_arguments())
def test_repmlp_resnet_builds_and_runs_or_names_the_argument(example):
    kwargs, mistake, correct = example
    model = build_or_named_error(RepMLPResNet, kwargs, mistake, correct)
    if model is None:
        return
    x = torch.randn(1, kwargs['in_channels'], *model.img_size)
    outs = model.eval()(x)
    assert len(outs) == len(model.out_indices)
    assert all(torch.isfinite(out).all() for out in outs)
