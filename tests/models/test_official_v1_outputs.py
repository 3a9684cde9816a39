"""mmrepmlp's blocks against the official RepMLP v1 code's, on the same weights.

``tests/data/official_v1/block_outputs.pth`` holds what the official ``repmlp_blocks.py``
computed (its generator, next to it, says how to rerun it): a Light Block and a RepMLP
Bottleneck with random weights and BN statistics, their training-form outputs, and the
state dict and outputs of their official deploy conversion. The weights reach mmrepmlp's
blocks through the official importer's key mapping, so these tests check the importer's
renaming, the blocks' training forms, mmrepmlp's conversion and the reordering of channel-major
deploy weights on load against the peer code.
"""
import os.path as osp

import pytest
import torch
from helpers_tools import TESTS_DIR, relative_difference

from mmrepmlp.models.blocks import RepMLPBottleneck, RepMLPLightBlock
from mmrepmlp.models.official_import import convert_official_state_dict

CASES = torch.load(osp.join(TESTS_DIR, 'data', 'official_v1', 'block_outputs.pth'),
                   weights_only=True)
# Where such a block sits in an official RepMLP-ResNet: the importer maps whole-model keys.
OFFICIAL_PREFIX, MMREPMLP_PREFIX = 'stage2.1.', 'backbone.stage2.1.'
TOLERANCE = 1e-5  # relative to the largest output


def mmrepmlp_block(name, deploy):
    """The mmrepmlp block with the official case's arguments."""
    arguments = CASES[name]['arguments']
    repmlp_cfg = dict(in_size=(arguments['H'], arguments['W']),
                      partition_size=(arguments['h'], arguments['w']),
                      groups=arguments['fc3_groups'], local_kernels=arguments['reparam_conv_k'],
                      fc1_fc2_reduction=arguments['fc1_fc2_reduction'])
    channels = dict(in_channels=arguments['in_channels'],
                    out_channels=arguments['out_channels'], repmlp_cfg=repmlp_cfg,
                    deploy=deploy)
    if name == 'light':
        return RepMLPLightBlock(
            reduction=arguments['out_channels'] // arguments['mid_channels'], **channels)
    return RepMLPBottleneck(
        r=arguments['r'], expansion=arguments['out_channels'] // arguments['mid_channels'],
        **channels)


def imported(official_state):
    """An official block's state dict, renamed by the importer for mmrepmlp's block."""
    converted = convert_official_state_dict(
        {OFFICIAL_PREFIX + key: tensor for key, tensor in official_state.items()})
    assert all(key.startswith(MMREPMLP_PREFIX) for key in converted)
    return {key.removeprefix(MMREPMLP_PREFIX): tensor for key, tensor in converted.items()}


def assert_close(actual, expected):
    difference = relative_difference(actual, expected)
    assert difference <= TOLERANCE, f'largest relative difference {difference:.1e}'


def official_training_block(name):
    """mmrepmlp's training-form block holding the official case's weights, in eval mode."""
    block = mmrepmlp_block(name, deploy=False).eval()
    block.load_state_dict(imported(CASES[name]['train_state']))  # strict: every tensor placed
    return block


@pytest.mark.parametrize('name', sorted(CASES))
def test_training_form_computes_what_the_official_one_does(name):
    case = CASES[name]
    with torch.no_grad():
        assert_close(official_training_block(name)(case['inputs']), case['train_output'])


@pytest.mark.parametrize('name', sorted(CASES))
def test_conversion_gives_the_official_deploy_weights_and_outputs(name):
    case = CASES[name]
    block = official_training_block(name)
    block.switch_to_deploy()
    # The official deploy weights, loaded (and reordered to mmrepmlp's partition-major deploy
    # layout: an official state dict has no version) into a deploy block.
    official_block = mmrepmlp_block(name, deploy=True)
    official_block.load_state_dict(imported(case['deploy_state']))
    converted, official = block.state_dict(), official_block.state_dict()
    assert converted.keys() == official.keys()
    for key, tensor in official.items():
        assert_close(converted[key], tensor)
    with torch.no_grad():
        assert_close(block(case['inputs']), case['deploy_output'])


@pytest.mark.parametrize('name', sorted(CASES))
def test_deploy_form_runs_official_deploy_weights(name):
    case = CASES[name]
    block = mmrepmlp_block(name, deploy=True).eval()
    block.load_state_dict(imported(case['deploy_state']))
    with torch.no_grad():
        assert_close(block(case['inputs']), case['deploy_output'])
