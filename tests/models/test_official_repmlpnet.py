"""mmrepmlp's RepMLPNet against the official code's, on the same weights, and the model zoo's
sizes against the official architecture.

``tests/data/official_repmlpnet/`` holds what the official ``repmlpnet.py`` built and computed
(its generator, next to it, says how to rerun it): a RepMLP block, a unit and a small
RepMLPNet with random weights and BN statistics, their training-form outputs, the state dict
and outputs after the official locality injection; and every preset's parameter and
multiply-accumulate counts. The weights reach mmrepmlp's modules through the importer's key
mapping, so these tests check the mapping, the training forms and mmrepmlp's conversion
against the peer code.
"""
import json
import os.path as osp

import pytest
import torch
import yaml
from helpers_tools import REPO_ROOT, TESTS_DIR, relative_difference
from mmpretrain import get_model
from mmpretrain.registry import MODELS
from torch.utils.flop_counter import FlopCounterMode

from mmrepmlp.analysis import count_flops
from mmrepmlp.models import RepMLPNetBlock, RepMLPNetUnit
from mmrepmlp.models.repmlpnet_import import convert_repmlpnet_state_dict
from mmrepmlp.reparam import reparameterize_model

FIXTURES = osp.join(TESTS_DIR, 'data', 'official_repmlpnet')
CASES = torch.load(osp.join(FIXTURES, 'outputs.pth'), weights_only=True)
with open(osp.join(FIXTURES, 'counts.json')) as f:
    COUNTS = json.load(f)
with open(osp.join(REPO_ROOT, 'configs', 'repmlpnet', 'metafile.yml')) as f:
    METAFILE = {model['Name']: model['Metadata'] for model in yaml.safe_load(f)['Models']}
# Where the block and the unit sit in an official RepMLPNet: the importer maps whole models.
OFFICIAL_PREFIX = {'block': 'stages.0.0.repmlp_block.', 'unit': 'stages.0.0.', 'network': ''}
MMREPMLP_PREFIX = {'block': 'backbone.stages.0.0.repmlp.', 'unit': 'backbone.stages.0.0.',
                   'network': ''}
TOLERANCE = 1e-5  # relative to the largest output


def classifier(arch, img_size, num_classes, deploy=False):
    """An MMPretrain classifier on HierRepMLPNet with a custom ``arch`` dict."""
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='HierRepMLPNet', arch=arch, img_size=img_size, deploy=deploy),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=arch['channels'][-1])))


def mmrepmlp_model(name, deploy):
    """The mmrepmlp module with the official case's arguments."""
    arguments = CASES[name]['arguments']
    kernels, reduction = arguments['reparam_conv_k'], arguments['globalperceptron_reduce']
    if name == 'block':
        return RepMLPNetBlock(arguments['in_channels'], (arguments['h'], arguments['w']),
                              arguments['num_sharesets'], kernels, reduction, deploy=deploy)
    if name == 'unit':
        return RepMLPNetUnit(arguments['channels'], (arguments['h'], arguments['w']),
                             arguments['num_sharesets'], kernels, reduction,
                             arguments['ffn_expand'], deploy=deploy)
    arch = dict(channels=arguments['channels'], num_blocks=arguments['num_blocks'],
                num_sharesets=arguments['sharesets_nums'], local_kernels=kernels,
                gp_reduction=reduction, patch_size=arguments['patch_size'][0])
    size = arguments['hs'][0] * arguments['patch_size'][0]
    return classifier(arch, size, arguments['num_class'], deploy)


def imported(name, official_state):
    """An official state dict, renamed by the importer for mmrepmlp's module."""
    converted = convert_repmlpnet_state_dict(
        {OFFICIAL_PREFIX[name] + key: tensor for key, tensor in official_state.items()},
        'official RepMLPNet')
    assert all(key.startswith(MMREPMLP_PREFIX[name]) for key in converted)
    return {key.removeprefix(MMREPMLP_PREFIX[name]): tensor for key, tensor in converted.items()}


def outputs(model, inputs):
    with torch.no_grad():
        if isinstance(model, (RepMLPNetBlock, RepMLPNetUnit)):
            return [model(x) for x in inputs]
        return [model(x, mode='tensor') for x in inputs]


def assert_close(actual, expected):
    difference = relative_difference(actual, expected)
    assert difference <= TOLERANCE, f'largest relative difference {difference:.1e}'


def official_training_model(name):
    """mmrepmlp's training-form module holding the official case's weights, in eval mode."""
    model = mmrepmlp_model(name, deploy=False).eval()
    model.load_state_dict(imported(name, CASES[name]['train_state']))  # strict
    return model


@pytest.mark.parametrize('name', sorted(CASES))
def test_training_form_computes_what_the_official_one_does(name):
    case = CASES[name]
    for actual, expected in zip(outputs(official_training_model(name), case['inputs']),
                                case['train_outputs'], strict=True):
        assert_close(actual, expected)


@pytest.mark.parametrize('name', sorted(CASES))
def test_conversion_gives_the_official_deploy_weights_and_outputs(name):
    case = CASES[name]
    model = reparameterize_model(official_training_model(name), inplace=True)
    converted, official = model.state_dict(), imported(name, case['deploy_state'])
    assert converted.keys() == official.keys()
    for key, tensor in official.items():
        if tensor.is_floating_point():
            assert_close(converted[key], tensor)
        else:  # num_batches_tracked
            assert torch.equal(converted[key], tensor), key
    for actual, expected in zip(outputs(model, case['inputs']), case['deploy_outputs'],
                                strict=True):
        assert_close(actual, expected)


@pytest.mark.parametrize('name', sorted(CASES))
def test_deploy_form_runs_official_deploy_weights(name):
    case = CASES[name]
    model = mmrepmlp_model(name, deploy=True).eval()
    model.load_state_dict(imported(name, case['deploy_state']))  # strict
    for actual, expected in zip(outputs(model, case['inputs']), case['deploy_outputs'],
                                strict=True):
        assert_close(actual, expected)


# ------------------------------------------------------------------------ preset sizes
def zoo_name(official_name, form):
    """``repmlpnet-t_8xb32_in1k-256px`` for ``('RepMLPNet-T256', 'train')``."""
    arch, size = official_name[-4].lower(), official_name[-3:]
    setting = '8xb32' if form == 'train' else 'deploy'
    return f'repmlpnet-{arch}_{setting}_in1k' + ('' if size == '224' else '-256px')


def conv_fc_macs(model, size):
    """Multiply-accumulates of convs, FCs and matmuls at batch 1, as the fixture counts them."""
    with torch.device('meta'):
        inputs = torch.zeros(1, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model(inputs, mode='tensor')
    return counter.get_total_flops() // 2


@pytest.mark.parametrize('official_name', sorted(COUNTS))
@pytest.mark.parametrize('form', ['train', 'deploy'])
def test_zoo_models_have_the_official_architectures_params_and_macs(official_name, form):
    name = zoo_name(official_name, form)
    with torch.device('meta'):  # shapes only: no memory, no compute
        model = get_model(name).eval()
    expected = COUNTS[official_name]
    params = sum(p.numel() for p in model.parameters())
    macs = conv_fc_macs(model, expected['input_size'])
    assert (params, macs) == (expected[f'params_{form}'], expected[f'macs_{form}'])
    assert (params, macs) == (METAFILE[name]['Parameters'], METAFILE[name]['FLOPs'])


def test_the_tools_flop_count_is_the_one_compared():
    """get_flops' conv/FC MACs (MMEngine's analysis) equal the meta-device count above."""
    arch = dict(channels=(8, 16, 16, 32), num_blocks=(1, 1, 1, 1), num_sharesets=(1, 2, 4, 8))
    model = classifier(arch, 64, 10).eval()
    with torch.device('meta'):
        expected = conv_fc_macs(classifier(arch, 64, 10).eval(), 64)
    assert count_flops(model, (3, 64, 64), conv_fc_only=True) == expected
