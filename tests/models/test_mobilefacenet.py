"""MobileFaceNet: the paper's size and cost, shapes at 96 and 112, the exact deploy form and the
OpenMMLab backbone options."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from mmrepmlp.analysis import count_flops, count_params
from mmrepmlp.models import GDCEmbeddingNeck, MobileFaceNet
from mmrepmlp.reparam import deploy_difference, randomize_norm_layers, repmlp_model_convert

TINY_ARCH = dict(stem_channels=8, stem_groups=4, stage_channels=(8, 16, 16), num_blocks=(1, 2, 1),
                 down_expansions=(16, 32, 32), expansions=(16, 16, 32), out_channels=32)


def tiny(**kwargs):
    return MobileFaceNet(arch=TINY_ARCH, **kwargs)


def test_paper_mobilefacenet_params_and_madds():
    """MobileFaceNets (Chen et al., 2018), Table 1-2: 0.99M parameters, 221M MAdds at 112x112
    with a 128-d embedding."""
    backbone = MobileFaceNet('mobilefacenet', img_size=112)
    model = nn.Sequential(backbone, GDCEmbeddingNeck(512, backbone.out_size, embedding_dim=128))
    assert count_params(model) == pytest.approx(0.99e6, rel=0.02)
    assert count_flops(model, (3, 112, 112), conv_fc_only=True) == pytest.approx(221e6, rel=0.01)


@pytest.mark.parametrize('arch, widths', [('mobilefacenet', (64, 128, 128, 512)),
                                          ('mbf', (128, 256, 256, 512))])
@pytest.mark.parametrize('img_size, sizes', [(96, (24, 12, 6, 6)), (112, (28, 14, 7, 7))])
def test_output_shapes(arch, widths, img_size, sizes):
    backbone = MobileFaceNet(arch, img_size=img_size, out_indices=(0, 1, 2, 3))
    outs = backbone(torch.rand(1, 3, img_size, img_size))
    assert [tuple(o.shape) for o in outs] == [(1, c, s, s) for c, s in zip(widths, sizes)]
    assert backbone.out_size == (sizes[-1], ) * 2 and backbone.out_channels == list(widths)


@pytest.mark.parametrize('img_size', [100, (96, 80)])
def test_other_sizes_give_a_matching_out_size(img_size):
    backbone = tiny(img_size=img_size)
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    (out, ) = backbone(torch.rand(2, 3, height, width))
    assert tuple(out.shape[-2:]) == backbone.out_size
    neck = GDCEmbeddingNeck(32, backbone.out_size, embedding_dim=16)
    assert neck(out).shape == (2, 16)


def test_wrong_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match='img_size'):
        tiny(img_size=96)(torch.rand(1, 3, 112, 112))


class LastOutput(nn.Module):
    """The backbone's last output as a tensor, the form :func:`deploy_difference` compares."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)[-1]


@pytest.mark.parametrize('arch, img_size', [('mbf', 96), ('mobilefacenet', 112)])
def test_deploy_form_equals_training_form(arch, img_size):
    torch.manual_seed(0)
    backbone = randomize_norm_layers(MobileFaceNet(arch, img_size=img_size))
    inputs = torch.rand(2, 3, img_size, img_size)
    _, max_rel, deploy = deploy_difference(LastOutput(backbone), inputs)
    assert max_rel <= 1e-5
    assert not any(isinstance(m, _BatchNorm) for m in deploy.modules())
    assert all(conv.bias is not None for conv in deploy.modules() if isinstance(conv, nn.Conv2d))


def test_switch_to_deploy_is_idempotent_and_matches_deploy_build():
    torch.manual_seed(0)
    backbone = randomize_norm_layers(tiny(img_size=32, out_indices=(1, 3))).eval()
    x = torch.rand(2, 3, 32, 32)
    deploy = repmlp_model_convert(backbone)
    once = {k: v.clone() for k, v in deploy.state_dict().items()}
    outs = deploy(x)
    deploy.switch_to_deploy()
    assert all(torch.equal(once[k], v) for k, v in deploy.state_dict().items())
    for again, out in zip(deploy(x), outs):
        torch.testing.assert_close(again, out, rtol=0, atol=0)
    built = tiny(img_size=32, out_indices=(1, 3), deploy=True)
    assert {k: v.shape for k, v in built.state_dict().items()} == \
        {k: v.shape for k, v in once.items()}
    built.load_state_dict(once)
    for built_out, out in zip(built.eval()(x), outs):
        torch.testing.assert_close(built_out, out, rtol=0, atol=0)


def test_frozen_stages_stay_frozen_through_deploy():
    backbone = tiny(img_size=32, frozen_stages=2).train()
    frozen = [backbone.stem, *backbone.stages[:2]]
    trainable = [backbone.stages[2], backbone.conv_out]
    for deploy in (False, True):
        if deploy:
            backbone.switch_to_deploy()
            backbone.train()
        assert not any(p.requires_grad for m in frozen for p in m.parameters())
        assert all(p.requires_grad for m in trainable for p in m.parameters())
        assert not any(m.training for m in frozen)
        assert all(m.training for m in trainable)


def test_norm_eval_keeps_every_bn_in_eval_mode():
    backbone = tiny(img_size=32, norm_eval=True).train()
    norms = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert backbone.conv_out[1].training


def test_registry_build_and_kaiming_init():
    backbone = MODELS.build(dict(type='MobileFaceNet', arch=TINY_ARCH, img_size=32))
    backbone.init_weights()
    weight = backbone.conv_out[0].conv.weight  # 1x1, 16 -> 32: fan_out 32
    assert weight.std().item() == pytest.approx((2 / 32)**0.5, rel=0.15)


@pytest.mark.parametrize('kwargs, error, name', [
    (dict(arch='mbf2'), ValueError, 'arch'),
    (dict(arch=['mbf']), TypeError, 'arch'),
    (dict(arch={k: v for k, v in TINY_ARCH.items() if k != 'expansions'}), ValueError, 'arch'),
    (dict(arch={**TINY_ARCH, 'num_blocks': (1, 2)}), ValueError, 'arch'),
    (dict(img_size=0), ValueError, 'img_size'),
    (dict(img_size='112'), TypeError, 'img_size'),
    (dict(out_indices=(4, )), ValueError, 'out_indices'),
    (dict(out_indices=()), ValueError, 'out_indices'),
    (dict(frozen_stages=5), ValueError, 'frozen_stages'),
])
def test_bad_arguments_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        MobileFaceNet(**{**dict(arch=TINY_ARCH), **kwargs})
