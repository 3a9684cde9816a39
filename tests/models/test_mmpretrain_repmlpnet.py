"""MMPretrain's RepMLPNet, the peer implementation in the pinned stack: its weights in
mmrepmlp's HierRepMLPNet (through the importer's mapping) compute the same, and
``reparameterize_model`` converts MMPretrain's own model exactly in float32 and float64."""
import copy

import pytest
import torch
from mmpretrain.registry import MODELS

from mmrepmlp.models.repmlpnet_import import convert_repmlpnet_state_dict, repmlpnet_layout
from mmrepmlp.reparam import randomize_norm_layers, reparameterize_model

# MMPretrain widens the Global Perceptron to a multiple of 8: channels // 4 must be one.
CHANNELS, DEPTHS, SHARESETS = (32, 64, 64, 128), (1, 1, 2, 1), (1, 2, 4, 8)
SIZE = 32


def classifier(backbone):
    return MODELS.build(dict(
        type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=CHANNELS[-1])))


def mmpretrain_model(deploy=False):
    torch.manual_seed(0)
    arch = dict(channels=list(CHANNELS), depths=list(DEPTHS), sharesets_nums=list(SHARESETS))
    model = classifier(dict(type='RepMLPNet', arch=arch, img_size=SIZE,
                            reparam_conv_kernels=(1, 3), deploy=deploy))
    return randomize_norm_layers(model).eval()


def mmrepmlp_model(deploy=False):
    arch = dict(channels=CHANNELS, num_blocks=DEPTHS, num_sharesets=SHARESETS)
    return classifier(dict(type='HierRepMLPNet', arch=arch, img_size=SIZE,
                           deploy=deploy)).eval()


def logits(model, x):
    with torch.no_grad():
        return model(x, mode='tensor')


def assert_close(actual, expected, tolerance):
    """Within ``tolerance`` of the largest magnitude of ``expected`` (equal when it is 0)."""
    difference = (actual - expected).abs().max().item()
    assert difference <= tolerance * expected.abs().max().item(), f'difference {difference:.1e}'


def imported(state_dict):
    assert repmlpnet_layout(state_dict) == 'MMPretrain RepMLPNet'
    return convert_repmlpnet_state_dict(state_dict)


@pytest.mark.parametrize('deploy', [False, True])
def test_mmpretrain_weights_compute_the_same_in_mmrepmlp(deploy):
    peer = mmpretrain_model()
    if deploy:
        peer.backbone.switch_to_deploy()  # MMPretrain's own locality injection
    ours = mmrepmlp_model(deploy)
    ours.load_state_dict(imported(peer.state_dict()))  # strict: every tensor placed
    x = torch.randn(2, 3, SIZE, SIZE)
    assert_close(logits(ours, x), logits(peer, x), 1e-5)


def test_mmrepmlp_conversion_gives_mmpretrains_deploy_weights():
    peer = mmpretrain_model()
    ours = mmrepmlp_model()
    ours.load_state_dict(imported(peer.state_dict()))
    peer.backbone.switch_to_deploy()
    ours.backbone.switch_to_deploy()
    expected = imported(peer.state_dict())
    converted = ours.state_dict()
    assert converted.keys() == expected.keys()
    for key, tensor in expected.items():
        if tensor.is_floating_point():
            assert_close(converted[key], tensor, 1e-5)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_reparameterize_model_converts_mmpretrains_model_exactly(dtype):
    peer = mmpretrain_model().to(dtype)
    x = torch.randn(2, 3, SIZE, SIZE, dtype=dtype)
    expected = logits(peer, x)

    converted = reparameterize_model(peer)

    assert_close(logits(converted, x), expected, 1e-10 if dtype == torch.float64 else 1e-5)
    blocks = [m for m in converted.modules() if hasattr(m, 'local_inject')]
    assert blocks and all(m.deploy and not hasattr(m, 'repconv3') for m in blocks)
    # MMPretrain's deploy model loads the result (its deploy config does)
    mmpretrain_model(deploy=True).load_state_dict(converted.state_dict())  # strict
    # converting again changes nothing
    state = copy.deepcopy(converted.state_dict())
    reparameterize_model(converted, inplace=True)
    assert all(torch.equal(state[k], v) for k, v in converted.state_dict().items())
