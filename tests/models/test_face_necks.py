"""FaceEmbeddingNeck and GDCEmbeddingNeck: shapes, exact deploy forms, argument checks, and
backbone -> neck -> margin head composition for MobileFaceNet and a ResNet-style backbone."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

from mmrepmlp.models import (
    FaceEmbeddingNeck,
    GDCEmbeddingNeck,
    LinearBN,
    MarginSoftmaxHead,
    MobileFaceNet,
)
from mmrepmlp.reparam import deploy_difference, randomize_norm_layers, repmlp_model_convert

# (neck class, constructor arguments, input map): ResNet-style last maps (stride 32) at 96 and
# 112 inputs, MobileFaceNet's (stride 16).
NECK_CASES = {
    'resnet-96': (FaceEmbeddingNeck, dict(in_channels=64, in_size=3, dropout=0.2), (64, 3, 3)),
    'resnet-112': (FaceEmbeddingNeck, dict(in_channels=64, in_size=4), (64, 4, 4)),
    'resnet-nonsquare': (FaceEmbeddingNeck, dict(in_channels=8, in_size=(3, 2)), (8, 3, 2)),
    'gdc-96': (GDCEmbeddingNeck, dict(in_channels=32, in_size=6, embedding_dim=128),
               (32, 6, 6)),
    'gdc-112': (GDCEmbeddingNeck, dict(in_channels=32, in_size=7), (32, 7, 7)),
}


def build_case(name, **kwargs):
    neck_type, args, map_shape = NECK_CASES[name]
    return neck_type(**args, **kwargs), map_shape


@pytest.mark.parametrize('name', NECK_CASES)
def test_shapes_and_tuple_inputs(name):
    neck, map_shape = build_case(name)
    maps = torch.randn(3, *map_shape)
    embedding = neck(maps)
    assert embedding.shape == (3, neck.embedding_dim)
    other = torch.randn(3, 5, 2, 2)
    from_tuple = neck.eval()((other, maps))
    assert isinstance(from_tuple, tuple) and len(from_tuple) == 1
    torch.testing.assert_close(from_tuple[0], neck(maps))


@pytest.mark.parametrize('name', NECK_CASES)
def test_deploy_form_equals_training_form(name):
    torch.manual_seed(0)
    neck, map_shape = build_case(name)
    randomize_norm_layers(neck)
    _, max_rel, deploy = deploy_difference(neck, torch.randn(4, *map_shape))
    assert max_rel <= 1e-5
    assert not any(isinstance(m, _BatchNorm) for m in deploy.modules())
    assert deploy.deploy and all(m.bias is not None for m in deploy.modules()
                                 if isinstance(m, (nn.Linear, nn.Conv2d)))


@pytest.mark.parametrize('name', NECK_CASES)
def test_switch_to_deploy_is_idempotent_and_matches_deploy_build(name):
    torch.manual_seed(0)
    neck, map_shape = build_case(name)
    randomize_norm_layers(neck).eval()
    maps = torch.randn(2, *map_shape)
    deploy = repmlp_model_convert(neck)
    once = {k: v.clone() for k, v in deploy.state_dict().items()}
    out = deploy(maps)
    deploy.switch_to_deploy()
    assert all(torch.equal(once[k], v) for k, v in deploy.state_dict().items())
    torch.testing.assert_close(deploy(maps), out, rtol=0, atol=0)
    built, _ = build_case(name, deploy=True)
    assert {k: v.shape for k, v in built.state_dict().items()} == \
        {k: v.shape for k, v in once.items()}


def test_linear_bn_deploy_is_one_linear():
    torch.manual_seed(0)
    layer = randomize_norm_layers(LinearBN(6, 4)).eval()
    x = torch.randn(5, 6)
    expected = layer(x)
    assert layer.linear.bias is None
    layer.switch_to_deploy()
    torch.testing.assert_close(layer(x), expected)
    assert isinstance(layer.linear, nn.Linear) and not hasattr(layer, 'bn')


@pytest.mark.parametrize('name', ['resnet-96', 'gdc-112'])
def test_wrong_map_size_is_a_clear_error(name):
    neck, (channels, h, w) = build_case(name)
    with pytest.raises(ValueError, match='in_size'):
        neck(torch.randn(1, channels, h + 1, w + 1))
    with pytest.raises(ValueError, match='in_channels'):
        neck(torch.randn(1, channels + 1, h, w))


@pytest.mark.parametrize('neck_type', [FaceEmbeddingNeck, GDCEmbeddingNeck])
@pytest.mark.parametrize('kwargs, error, name', [
    (dict(in_channels=0), ValueError, 'in_channels'),
    (dict(in_channels='8'), TypeError, 'in_channels'),
    (dict(in_size=0), ValueError, 'in_size'),
    (dict(in_size=(3, )), TypeError, 'in_size'),
    (dict(in_size=3.0), TypeError, 'in_size'),
    (dict(embedding_dim=0), ValueError, 'embedding_dim'),
])
def test_bad_arguments_name_the_argument(neck_type, kwargs, error, name):
    with pytest.raises(error, match=name):
        neck_type(**{**dict(in_channels=8, in_size=3), **kwargs})


def test_bad_dropout():
    with pytest.raises(ValueError, match='dropout'):
        FaceEmbeddingNeck(8, 3, dropout=1.0)


TINY_RESNET = dict(num_blocks=(1, 1, 1, 1), widths=(16, 32, 64, 128))


@pytest.mark.parametrize('backbone_cfg, neck_cfg', [
    (dict(type='MobileFaceNet', arch='mobilefacenet', img_size=96),
     dict(type='GDCEmbeddingNeck', in_channels=512, in_size=6)),
    (dict(type='RepMLPResNet', arch=TINY_RESNET, img_size=96),
     dict(type='FaceEmbeddingNeck', in_channels=128, in_size=3)),
], ids=['mobilefacenet', 'resnet-style'])
def test_backbone_neck_margin_head_compose(backbone_cfg, neck_cfg):
    torch.manual_seed(0)
    backbone, neck = MODELS.build(backbone_cfg), MODELS.build(neck_cfg)
    head = MODELS.build(dict(type='MarginSoftmaxHead', num_classes=10, in_channels=512))
    assert isinstance(head, MarginSoftmaxHead)
    labels = [DataSample().set_gt_label(i) for i in (1, 7)]
    loss = head.loss(neck(backbone(torch.randn(2, 3, 96, 96))), labels)['loss']
    loss.backward()
    assert torch.isfinite(loss) and head.weight.grad is not None
    if isinstance(backbone, MobileFaceNet):
        assert neck.in_size == backbone.out_size
