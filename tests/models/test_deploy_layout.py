"""The partition-major deploy layout of RepMLPBlock: deploy checkpoints of the channel-major
layout (``tests/data/deploy_v1/blocks.pth``, written by the code before it; its generator is
next to it) load and compute what they computed, with or without their version metadata, and
checkpoints of the current layout are not converted again on their way through the tools'
checkpoint reader."""
import collections
import copy
import os.path as osp

import pytest
import torch
from helpers_tools import REPO_ROOT

from mmrepmlp.models.blocks import RepMLP1d, RepMLPBlock
from mmrepmlp.utils.checkpoint import read_checkpoint

FIXTURE = osp.join(REPO_ROOT, 'tests', 'data', 'deploy_v1', 'blocks.pth')


@pytest.fixture(scope='module')
def fixture():
    return torch.load(FIXTURE, weights_only=True)


def deploy_blocks(configs):
    """The fixture's blocks, built now directly in deploy form (random FCs)."""
    blocks = torch.nn.ModuleDict()
    for name, cfg in configs.items():
        cls = RepMLP1d if 'in_length' in cfg else RepMLPBlock
        blocks[name] = cls(**cfg, deploy=True)
    return blocks.double().eval()


def outputs_of(blocks, inputs, channels_last=False):
    with torch.no_grad():
        return {name: block(inputs[name].contiguous(memory_format=torch.channels_last)
                            if channels_last and inputs[name].dim() == 4 else inputs[name])
                for name, block in blocks.items()}


def assert_outputs_equal(actual, expected):
    for name, out in expected.items():
        torch.testing.assert_close(actual[name], out, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize('channels_last', [False, True])
def test_a_channel_major_deploy_checkpoint_loads_and_computes_the_same(fixture, channels_last):
    state_dict = fixture['state_dict']
    assert {meta['version'] for key, meta in state_dict._metadata.items()
            if key in fixture['configs']} == {1}
    blocks = deploy_blocks(fixture['configs'])
    blocks.load_state_dict(state_dict)
    assert_outputs_equal(outputs_of(blocks, fixture['inputs'], channels_last),
                         fixture['outputs'])
    # Converted, not copied: the stored FC3 is reordered.
    assert not torch.equal(blocks['padded'].fc3.weight, state_dict['padded.fc3.weight'])


def test_a_state_dict_without_versions_is_read_as_channel_major(fixture):
    """The official code's deploy checkpoints, and hand-made dicts, carry no version."""
    plain = dict(fixture['state_dict'])
    blocks = deploy_blocks(fixture['configs'])
    blocks.load_state_dict(plain)
    assert_outputs_equal(outputs_of(blocks, fixture['inputs']), fixture['outputs'])


def test_a_partition_major_checkpoint_is_not_converted_again(fixture, tmp_path):
    blocks = deploy_blocks(fixture['configs'])
    blocks.load_state_dict(fixture['state_dict'])
    state_dict = blocks.state_dict()
    assert state_dict._metadata['padded']['version'] == RepMLPBlock._version == 2
    again = deploy_blocks(fixture['configs'])
    again.load_state_dict(copy.deepcopy(state_dict))
    assert_outputs_equal(outputs_of(again, fixture['inputs']), fixture['outputs'])
    # Through the tools' reader, which strips DataParallel's ``module.`` prefix.
    wrapped = collections.OrderedDict((f'module.{k}', v) for k, v in state_dict.items())
    wrapped._metadata = collections.OrderedDict(
        ('module' + (f'.{k}' if k else ''), v) for k, v in state_dict._metadata.items())
    path = tmp_path / 'deploy.pth'
    torch.save({'state_dict': wrapped}, path)
    read = deploy_blocks(fixture['configs'])
    read.load_state_dict(read_checkpoint(str(path))[1])
    assert_outputs_equal(outputs_of(read, fixture['inputs']), fixture['outputs'])


def test_training_form_checkpoints_are_left_alone(fixture):
    """Only deploy blocks convert: a training-form state dict keeps its layout."""
    torch.manual_seed(0)
    block = RepMLPBlock(**fixture['configs']['padded']).double()
    state_dict = dict(block.state_dict())  # no versions
    other = RepMLPBlock(**fixture['configs']['padded']).double()
    other.load_state_dict(state_dict)
    for key, value in other.state_dict().items():
        assert torch.equal(value, state_dict[key]), key
