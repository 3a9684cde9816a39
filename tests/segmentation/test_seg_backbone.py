"""RepMLPResNet as a segmentation backbone: at output stride 8 with the same weights it
computes what MMSegmentation's PSPNet-R50-D8 backbones compute, and the RepMLP-Res50-g4/8 of
the paper's Cityscapes model gets the feature sizes and partition grids of Sec. 4.4 and
converts exactly at that geometry."""
import pytest
import torch

from mmrepmlp.models import RepMLPBlock, RepMLPResNet
from mmrepmlp.models.resnet_import import resnet_state_dict_to_repmlp_resnet
from mmrepmlp.reparam import randomize_norm_layers, reparameterize_model

OS8 = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True,
           out_indices=(0, 1, 2, 3))


@pytest.mark.parametrize('mmseg_type, deep_stem', [('ResNetV1c', True), ('ResNet', False)])
def test_res50_base_at_output_stride_8_equals_mmseg_backbone(mmseg_type, deep_stem):
    from mmseg.models import backbones

    torch.manual_seed(0)
    theirs = getattr(backbones, mmseg_type)(depth=50, **OS8)
    theirs.eval()  # MMSeg's ResNet.train() returns None, so not chained
    randomize_norm_layers(theirs)
    ours = RepMLPResNet('res50-base', deep_stem=deep_stem, **OS8).eval()
    ours.load_state_dict(resnet_state_dict_to_repmlp_resnet(theirs.state_dict()), strict=True)
    x = torch.randn(1, 3, 97, 81)  # odd sizes: the rounding of every stride must agree

    with torch.no_grad():
        expected, actual = theirs(x), ours(x)

    assert [tuple(f.shape[1:2]) for f in actual] == [(256, ), (512, ), (1024, ), (2048, )]
    for e, a in zip(expected, actual):
        assert e.shape == a.shape
        assert (e - a).abs().max() <= 1e-5 * e.abs().max()
    # the dilation of the first block of c4 and c5 is contracted, as in MMSeg
    assert ours.stage3[0].conv2.conv.dilation == (1, 1)
    assert ours.stage3[1].conv2.conv.dilation == (2, 2)
    assert ours.stage4[0].conv2.conv.dilation == (2, 2)


def test_repmlp_g4g8_on_713_crops_has_the_papers_grid():
    with torch.device('meta'):  # shapes only: the full model is not run
        model = RepMLPResNet('res50-g4g8-seg', img_size=713, strides=(1, 2, 1, 1),
                             dilations=(1, 1, 1, 4), contract_dilation=True,
                             out_indices=(0, 1, 2, 3))
    blocks = {name: m for name, m in model.named_modules() if isinstance(m, RepMLPBlock)}
    c3 = [b for n, b in blocks.items() if n.startswith('stage2.')]
    c4 = [b for n, b in blocks.items() if n.startswith('stage3.')]
    assert len(c3) == 3 and len(c4) == 5
    for block, reduction in [(b, 4) for b in c3] + [(b, 8) for b in c4]:
        assert block.in_size == (90, 90) and block.partition_size == (10, 10)
        assert block.num_parts == (9, 9)  # 81 partitions per channel
        global_size = block.in_channels * 81
        assert tuple(block.fc1.weight.shape) == (global_size // reduction, global_size)
        assert tuple(block.fc2.weight.shape) == (global_size, global_size // reduction)
    # c4 keeps its resolution without dilation (its receptive field is large already)
    assert model.dilations[2] == 1 and model.stage3[1].conv2.conv.dilation == (1, 1)
    assert model.out_channels == [256, 512, 1024, 2048]


def test_repmlp_g4g8_at_the_713_geometry_converts_exactly_in_float64():
    """'res50-g4g8-seg' on 713 crops (c3 and c4 90x90 in 9x9 partitions of 10x10, FC1/FC2
    reduced 4x in c3 and 8x in c4, kernels up to 7x7, c5 dilated 4) at an eighth of its widths
    and one RepMLP block in c3 and c4: the deploy form computes the training form."""
    arch = dict(num_blocks=(1, 2, 2, 1), widths=(32, 64, 128, 256), stem_channels=8,
                block_type=('base', 'bottleneck', 'bottleneck', 'base'), r=(2, 2, 4, 4),
                groups=(1, 4, 8, 1), partition=10, local_kernels=(1, 3, 5, 7),
                fc1_fc2_reduction=(1, 4, 8, 1))
    torch.manual_seed(0)
    model = RepMLPResNet(arch, img_size=713, strides=(1, 2, 1, 1), dilations=(1, 1, 1, 4),
                         contract_dilation=True, out_indices=(0, 1, 2, 3))
    model = randomize_norm_layers(model).double().eval()
    blocks = [m for m in model.modules() if isinstance(m, RepMLPBlock)]
    assert [(b.in_size, b.num_parts, b.groups, b.fc1_fc2_reduction) for b in blocks] == [
        ((90, 90), (9, 9), 4, 4), ((90, 90), (9, 9), 8, 8)]
    x = torch.randn(1, 3, 713, 713, dtype=torch.float64)

    with torch.no_grad():
        expected = model(x)
        actual = reparameterize_model(model)(x)

    assert [tuple(f.shape[2:]) for f in actual] == [(179, 179)] + [(90, 90)] * 3
    for e, a in zip(expected, actual):
        assert (e - a).abs().max() <= 1e-10 * e.abs().max()


def test_torchvision_resnet50_converts_for_the_baseline(tmp_path):
    import torchvision
    from helpers_tools import load_tool

    from mmrepmlp.utils.checkpoint import read_checkpoint

    torchvision_model = torchvision.models.resnet50().eval()
    randomize_norm_layers(torchvision_model)
    torch.save(torchvision_model.state_dict(), tmp_path / 'resnet50.pth')

    load_tool('model_converters/resnet_to_mmrepmlp.py').main(
        [str(tmp_path / 'resnet50.pth'), str(tmp_path / 'converted.pth')])

    state = read_checkpoint(str(tmp_path / 'converted.pth'))[1]
    ours = RepMLPResNet('res50-base', out_indices=(3, )).eval()
    ours.load_state_dict({k.removeprefix('backbone.'): v for k, v in state.items()})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        body = torch.nn.Sequential(*list(torchvision_model.children())[:-2])
        expected, actual = body(x), ours(x)[0]
    assert (expected - actual).abs().max() <= 1e-5 * expected.abs().max()
    with pytest.raises(SystemExit, match='is not a ResNet-50'):
        load_tool('model_converters/resnet_to_mmrepmlp.py').main(
            [str(tmp_path / 'converted.pth'), str(tmp_path / 'twice.pth')])
