"""Property: every combination of constructor arguments of RepMLPNet's block and backbone either
builds a model whose forward runs on its declared input size (and, where it takes them, on
other sizes), or raises ValueError or TypeError naming one of the arguments as a whole word;
never anything else, and never a model that fails later.

Each example is a plausible configuration (combinations that do not fit together, such as
share-sets that do not divide the channels, are part of it), and in about half of them one
argument gets one of its typical mistakes; then the error must name that argument.
"""
import re

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrepmlp.models import HierRepMLPNet, RepMLPNetBlock

# derandomize: CI draws the same examples every run, so a red run can be rerun and a green
# one stays green; widen max_examples locally to search further.
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
NORMS = [dict(type='BN'), dict(type='SyncBN')]
# None is the backbone's default (BN), but no norm config for the block.
BACKBONE_BAD_NORMS = [dict(type='LN'), dict(type='GN', num_groups=1), dict(type='Bogus'), 'BN']
BAD_NORMS = [*BACKBONE_BAD_NORMS, None]
BAD_INTS = [0, -3, 4.0, '4', True, None]
BAD_FLAGS = ['no', 0, 1, None]


def names_word(message, name):
    """Whether ``message`` has ``name`` as a whole word (``channels`` is not in
    ``in_channels``)."""
    return re.search(rf'(?<![\w.]){re.escape(name)}(?!\w)', message) is not None


def with_mistake(draw, kwargs, mistakes):
    """``(kwargs, the argument given a mistake or None)``."""
    if draw(st.booleans()):
        return kwargs, None
    name = draw(st.sampled_from(sorted(mistakes)))
    kwargs[name] = draw(st.sampled_from(mistakes[name]))
    return kwargs, name


def built(cls, kwargs):
    """``(model, None)`` or ``(None, error)`` after checking that the error names one of the
    arguments (or of the arch's keys)."""
    try:
        return cls(**kwargs), None
    except (ValueError, TypeError) as error:
        arch = kwargs.get('arch')
        names = set(kwargs) | (set(arch) if isinstance(arch, dict) else set())
        assert any(names_word(str(error), name) for name in names), \
            f'{type(error).__name__}: {error}'
        return None, error


def build_or_named_error(cls, kwargs, mistake, correct):
    """The model, or None after checking that the error names an argument: the one given a
    mistake when the ``correct`` arguments (without it) build."""
    model, error = built(cls, kwargs)
    if mistake is not None and built(cls, correct)[0] is not None:
        assert error is not None, f'the mistake in {mistake} was accepted'
        assert names_word(str(error), mistake), f'{type(error).__name__}: {error} (mistake ' \
                                                f'in {mistake})'
    return model


@st.composite
def block_arguments(draw):
    partition = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    kwargs = dict(
        channels=draw(st.sampled_from([4, 8, 12, np.int64(8)])),
        partition_size=partition if draw(st.booleans()) else partition[0],
        num_sharesets=draw(st.sampled_from([1, 2, 4, np.int64(4)])),
        local_kernels=tuple(draw(st.sets(st.sampled_from([1, 3, 5, (1, 3)]), max_size=3))),
        gp_reduction=draw(st.sampled_from([1, 2, 4, 16])),
        norm_cfg=draw(st.sampled_from(NORMS)),
        deploy=draw(st.booleans()))
    correct = dict(kwargs)
    mistakes = {
        'channels': BAD_INTS, 'num_sharesets': BAD_INTS, 'gp_reduction': BAD_INTS,
        'partition_size': [0, 2.5, (2, ), 'x', (2, 0)],
        'local_kernels': [None, 3, (2, ), (1, 1), ((2, 3), )],
        'norm_cfg': BAD_NORMS, 'deploy': BAD_FLAGS,
    }
    return (*with_mistake(draw, kwargs, mistakes), correct)


@SETTINGS
@given(block_arguments())
def test_repmlpnet_block_builds_and_runs_or_names_the_argument(example):
    kwargs, mistake, correct = example
    block = build_or_named_error(RepMLPNetBlock, kwargs, mistake, correct)
    if block is None:
        return
    h, w = block.partition_size
    # its partition, and a map of several partitions that is no multiple of them
    for size in ((h, w), (2 * h + 1, w + 1)):
        x = torch.randn(2, block.channels, *size)
        out = block.eval()(x)
        assert out.shape == x.shape and torch.isfinite(out).all()


@st.composite
def backbone_arguments(draw):
    channels = draw(st.sampled_from([(8, 16, 16, 32), (8, 16), (12, 24, 48)]))
    stages = len(channels)
    arch = dict(
        channels=channels,
        num_blocks=draw(st.sampled_from([(1, ) * stages, (1, 2, 1, 1)[:stages]])),
        num_sharesets=draw(st.sampled_from([(1, ) * stages, (1, 2, 4, 8)[:stages],
                                            (2, 4, 4, 4)[:stages]])))
    for key, values in (('local_kernels', [(1, 3), (3, ), (), [1, (1, 3)]]),
                        ('gp_reduction', [2, 4]), ('ffn_ratio', [1, 4]),
                        ('patch_size', [2, 4])):
        if draw(st.booleans()):
            arch[key] = draw(st.sampled_from(values))
    kwargs = dict(
        arch=arch if draw(st.integers(0, 3)) else draw(st.sampled_from(['t', 'B'])),
        img_size=draw(st.sampled_from([32, 48, (32, 48)])),
        in_channels=draw(st.sampled_from([1, 3])),
        out_indices=draw(st.sampled_from([(0, 1), (-1, ), 1])),
        frozen_stages=draw(st.integers(-1, stages)),
        norm_eval=draw(st.booleans()), norm_cfg=draw(st.sampled_from([None, *NORMS])),
        larger_input=draw(st.sampled_from(['error', 'windows'])),
        with_cp=draw(st.booleans()), deploy=draw(st.booleans()))
    correct = dict(kwargs, arch=dict(arch) if isinstance(kwargs['arch'], dict)
                   else kwargs['arch'])
    mistakes = {
        'img_size': [64.0, (32, ), 0], 'in_channels': BAD_INTS,
        'out_indices': [(4, ), (), (0.0, ), '0'], 'frozen_stages': [-2, 5, 1.0],
        'norm_eval': BAD_FLAGS, 'norm_cfg': BACKBONE_BAD_NORMS, 'larger_input': ['crop', None],
        'with_cp': BAD_FLAGS, 'deploy': BAD_FLAGS, 'arch': ['x', 3, None],
    }
    arch_mistakes = {
        'channels': [(8, '16', 16, 32)[:stages], (8, -16, 16, 32)[:stages], (8, )],
        'num_blocks': [(1, 0, 1, 1)[:stages], (1, 2.0, 1, 1)[:stages]],
        'num_sharesets': [(1, 0, 2, 4)[:stages], (1, 3, 2, 4)[:stages]],
        'local_kernels': [(2, ), 3, None], 'gp_reduction': [0, 64, 'x'],
        'ffn_ratio': [0, 'x'], 'patch_size': [0, 2.5, 64],
    }
    if not isinstance(kwargs['arch'], dict):  # a preset has no arch keys to get wrong
        arch_mistakes = {}
    kwargs, mistake = with_mistake(draw, kwargs, {**mistakes, **arch_mistakes})
    if mistake in arch_mistakes:
        arch[mistake] = kwargs.pop(mistake)
    return kwargs, mistake, correct


@SETTINGS
@given(backbone_arguments())
def test_hier_repmlpnet_builds_and_runs_or_names_the_argument(example):
    kwargs, mistake, correct = example
    if isinstance(kwargs['arch'], str):  # a preset: build it on the meta device (no memory)
        with torch.device('meta'):
            build_or_named_error(HierRepMLPNet, kwargs, mistake, correct)
        return
    model = build_or_named_error(HierRepMLPNet, kwargs, mistake, correct)
    if model is None:
        return
    sizes = [model.img_size]
    if model.larger_input == 'windows':
        sizes.append((model.img_size[0] + 8, 2 * model.img_size[1]))
    for size in sizes:
        outs = model.eval()(torch.randn(1, kwargs['in_channels'], *size))
        assert len(outs) == len(model.out_indices)
        assert [out.shape[1] for out in outs] == [model.out_channels[i]
                                                  for i in model.out_indices]
        assert all(torch.isfinite(out).all() for out in outs)
