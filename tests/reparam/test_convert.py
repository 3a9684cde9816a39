"""Model-level conversion: every re-parameterizable module of any model, copies, saving."""
import os

import pytest
import torch
import torch.nn as nn

from mmrepmlp.models.blocks import RepMLP1d, RepMLPBlock
from mmrepmlp.models.layers import ConvBN
from mmrepmlp.reparam import (
    deploy_difference,
    randomize_norm_layers,
    reparameterize_model,
    repmlp_model_convert,
)


class Net(nn.Module):
    """A model holding RepMLP blocks deep inside, next to plain layers and a ConvBN."""

    def __init__(self, deploy=False):
        super().__init__()
        self.stem = ConvBN(3, 8, 3, padding=1, deploy=deploy)
        self.body = nn.Sequential(
            RepMLPBlock(8, 8, 8, 4, groups=2, local_kernels=(1, 3), deploy=deploy), nn.ReLU(),
            nn.Sequential(RepMLPBlock(8, 4, 8, 8, local_kernels=(3, ), deploy=deploy)))
        self.head_bn = nn.BatchNorm2d(4)  # not re-parameterizable: must stay as is

    def forward(self, x):
        return self.head_bn(self.body(self.stem(x)))


def make_net():
    torch.manual_seed(0)
    return randomize_norm_layers(Net()).double()


def test_every_block_in_a_model_is_converted_and_the_rest_kept():
    net = make_net()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    max_abs, max_rel, deployed = deploy_difference(net, x)
    assert max_rel < 1e-12
    assert deployed.stem.deploy and deployed.body[0].deploy and deployed.body[2][0].deploy
    assert isinstance(deployed.head_bn, nn.BatchNorm2d)
    assert not net.body[0].deploy  # the input model is untouched


def test_deploy_model_strict_loads_the_converted_state_dict():
    converted = repmlp_model_convert(make_net())
    fresh = Net(deploy=True).double()
    fresh.load_state_dict(converted.state_dict(), strict=True)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(fresh.eval()(x), converted.eval()(x), rtol=0, atol=0)


def test_convert_in_place_without_copy():
    net = make_net()
    converted = repmlp_model_convert(net, do_copy=False)
    assert converted is net and net.body[0].deploy


def test_convert_a_block_itself_and_a_1d_block():
    for block in (RepMLPBlock(4, 4, 6, 3, local_kernels=(1, 3)),
                  RepMLP1d(4, 4, 9, 3, local_kernels=(1, 3))):
        converted = repmlp_model_convert(block)
        assert converted.deploy and not block.deploy


def test_reparameterize_model_twice_is_harmless():
    net = reparameterize_model(make_net())
    state = {k: v.clone() for k, v in net.state_dict().items()}
    reparameterize_model(net)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_save_path_writes_the_deploy_state_dict(tmp_path):
    path = tmp_path / 'sub' / 'deploy.pth'
    converted = repmlp_model_convert(make_net(), save_path=str(path))
    saved = torch.load(path, weights_only=True)
    assert saved.keys() == converted.state_dict().keys()
    assert os.listdir(path.parent) == ['deploy.pth']  # no temporary file left behind


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / 'deploy.pth'
    path.write_bytes(b'previous checkpoint')

    def failing_save(obj, f):
        with open(f, 'wb') as handle:
            handle.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', failing_save)
    with pytest.raises(OSError, match='disk full'):
        repmlp_model_convert(make_net(), save_path=str(path))
    assert path.read_bytes() == b'previous checkpoint'
    assert os.listdir(tmp_path) == ['deploy.pth']


class TimmStyleConvBN(torch.nn.Module):
    """A block converted the way timm's re-parameterizable blocks are: ``reparameterize()``."""

    def __init__(self, channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(channels)

    def forward(self, x):
        return self.bn(self.conv(x)) if hasattr(self, 'bn') else self.conv(x)

    def reparameterize(self):
        from mmrepmlp.reparam import fuse_conv_bn

        weight, bias = fuse_conv_bn(self.conv, self.bn)
        self.conv = torch.nn.Conv2d(self.conv.in_channels, self.conv.out_channels, 3,
                                    padding=1)
        self.conv.weight.data, self.conv.bias.data = weight.detach(), bias.detach()
        del self.bn


def test_a_model_mixing_repmlp_with_mmpretrain_and_timm_blocks_converts_in_one_call():
    from mmpretrain.models.backbones.mobileone import MobileOneBlock
    from mmpretrain.models.backbones.repvgg import RepVGGBlock

    from mmrepmlp.models import RepMLPBlock

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        RepVGGBlock(8, 8),
        RepMLPBlock(8, 8, in_size=8, partition_size=4, groups=2, local_kernels=(1, 3)),
        MobileOneBlock(8, 8, num_convs=2, kernel_size=3, padding=1, groups=8),
        TimmStyleConvBN(8))
    randomize_norm_layers(model).eval()
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64)
    model.double()
    expected = model(x)

    converted = reparameterize_model(model)

    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in converted.modules())
    assert (converted(x) - expected).abs().max() <= 1e-10 * expected.abs().max()
    # a copy by default: the model passed in keeps its training form
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert reparameterize_model(model, inplace=True) is model
