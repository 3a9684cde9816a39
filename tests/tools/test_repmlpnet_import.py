"""tools/model_converters/official_to_mmrepmlp.py on synthetic RepMLPNet checkpoints: the key
layouts of every official preset in both forms (tests/data/official_repmlpnet/shapes.json.gz,
written by the official code) and of MMPretrain's RepMLPNet (built here), each tensor holding
its own value, so that a tensor landing in the wrong place, or left at its random init, is
caught."""
import contextlib
import gzip
import io
import json
import os.path as osp

import pytest
import torch
from helpers_tools import TESTS_DIR, load_tool
from mmpretrain import get_model
from mmpretrain.models.backbones import RepMLPNet

from mmrepmlp.models.official_import import OfficialImportError, import_official_checkpoint
from mmrepmlp.utils.checkpoint import safe_load

IMPORTER = 'model_converters/official_to_mmrepmlp.py'
with gzip.open(osp.join(TESTS_DIR, 'data', 'official_repmlpnet', 'shapes.json.gz'), 'rt') as f:
    OFFICIAL_LAYOUTS = json.load(f)

# Official key -> mmrepmlp key, written out by hand for one tensor of every kind.
SPOT_CHECKS = {
    'conv_embedding.conv.weight': 'backbone.stem.conv.weight',
    'conv_embedding.bn.running_var': 'backbone.stem.bn.running_var',
    'embeds.2.bn.bias': 'backbone.downsamples.2.bn.bias',
    'stages.2.5.prebn1.weight': 'backbone.stages.2.5.norm1.weight',
    'stages.1.0.prebn2.running_mean': 'backbone.stages.1.0.norm2.running_mean',
    'stages.0.1.repmlp_block.gp.fc1.weight': 'backbone.stages.0.1.repmlp.fc1.weight',
    'stages.3.1.repmlp_block.gp.fc2.bias': 'backbone.stages.3.1.repmlp.fc2.bias',
    'stages.2.3.repmlp_block.fc3.weight': 'backbone.stages.2.3.repmlp.fc3.weight',
    'stages.2.3.repmlp_block.fc3.bias': 'backbone.stages.2.3.repmlp.fc3.bias',
    'stages.1.1.repmlp_block.fc3_bn.weight': 'backbone.stages.1.1.repmlp.fc3_bn.weight',
    'stages.3.0.repmlp_block.repconv3.conv.weight':
        'backbone.stages.3.0.repmlp.local_perceptron.conv3x3.conv.weight',
    'stages.0.0.repmlp_block.repconv1.bn.running_mean':
        'backbone.stages.0.0.repmlp.local_perceptron.conv1x1.bn.running_mean',
    'stages.2.1.ffn_block.ffn_fc1.conv.weight': 'backbone.stages.2.1.ffn.fc1.conv.weight',
    'stages.2.1.ffn_block.ffn_fc2.bn.bias': 'backbone.stages.2.1.ffn.fc2.bn.bias',
    'head_norm.running_var': 'backbone.final_norm.running_var',
    'head.weight': 'head.fc.weight',
}


def zoo_name(official_name, form):
    """``repmlpnet-t_8xb32_in1k-256px`` for ``('RepMLPNet-T256', 'train')``."""
    arch, size = official_name[-4].lower(), official_name[-3:]
    setting = '8xb32' if form == 'train' else 'deploy'
    return f'repmlpnet-{arch}_{setting}_in1k' + ('' if size == '224' else '-256px')


def numbered(layout):
    """``{key: shape}`` -> a state dict, tensor ``i`` filled with the value ``i + 1`` (expanded
    scalars: the files stay tiny while loading gives full-size tensors)."""
    state_dict = {}
    for index, (key, shape) in enumerate(layout.items()):
        dtype = torch.long if key.endswith('num_batches_tracked') else torch.float32
        state_dict[key] = torch.tensor(index + 1, dtype=dtype).expand(tuple(shape))
    return state_dict


def mmpretrain_layout(img_size, deploy):
    with torch.device('meta'):
        backbone = RepMLPNet('b', img_size=img_size, reparam_conv_kernels=(1, 3),
                             deploy=deploy)
    layout = {f'backbone.{k}': v.shape for k, v in backbone.state_dict().items()}
    return {**layout, 'head.fc.weight': (1000, 768), 'head.fc.bias': (1000, )}


def save(obj, path):
    torch.save(obj, path)
    return str(path)


def assert_every_tensor_lands_once(source, name, dst):
    """Each tensor of the zoo model ``name`` loaded from ``dst`` is one source tensor, and
    every source tensor is somewhere; returns ``{source key: mmrepmlp key}``."""
    loaded = get_model(name, pretrained=dst).state_dict()
    value_to_key = {int(v.reshape(-1)[0]): k for k, v in source.items()}
    landed = {}
    for key, tensor in loaded.items():
        assert tensor.min() == tensor.max(), f'{key} is not one source tensor (random init?)'
        landed[value_to_key[int(tensor.reshape(-1)[0])]] = key
    assert len(landed) == len(loaded) == len(source)  # a bijection: nothing lost or doubled
    return landed


@pytest.mark.parametrize('form', ['train', 'deploy'])
@pytest.mark.parametrize('official_name', sorted(OFFICIAL_LAYOUTS))
def test_every_official_preset_is_recognised(official_name, form, tmp_path):
    source = numbered(OFFICIAL_LAYOUTS[official_name][form])
    src = save({f'module.{k}': v for k, v in source.items()}, tmp_path / 'official.pth')
    dst = str(tmp_path / 'converted.pth')

    name = import_official_checkpoint(src, dst)

    assert name == zoo_name(official_name, form)
    converted = safe_load(dst)
    assert converted['meta']['model'] == name
    assert len(converted['state_dict']) == len(source)


@pytest.mark.parametrize('form', ['train', 'deploy'])
def test_every_official_tensor_lands_in_its_place(form, tmp_path):
    source = numbered(OFFICIAL_LAYOUTS['RepMLPNet-T224'][form])
    dst = str(tmp_path / 'converted.pth')
    name = import_official_checkpoint(save(source, tmp_path / 'official.pth'), dst)

    landed = assert_every_tensor_lands_once(source, name, dst)

    checked = [key for key in SPOT_CHECKS if key in source]
    assert len(checked) >= len(SPOT_CHECKS) - 3  # the deploy form lacks fc3_bn and repconvs
    for official_key in checked:
        assert landed[official_key] == SPOT_CHECKS[official_key]


@pytest.mark.parametrize('img_size, deploy, expected', [
    (224, False, 'repmlpnet-b_8xb32_in1k'),
    (256, False, 'repmlpnet-b_8xb32_in1k-256px'),
    (224, True, 'repmlpnet-b_deploy_in1k'),
])
def test_mmpretrain_checkpoints_are_recognised_and_every_tensor_lands(img_size, deploy,
                                                                      expected, tmp_path):
    source = numbered(mmpretrain_layout(img_size, deploy))
    src = save({'state_dict': source, 'meta': {'epoch': 100}}, tmp_path / 'mmpretrain.pth')
    dst = str(tmp_path / 'converted.pth')

    assert import_official_checkpoint(src, dst) == expected

    if expected == 'repmlpnet-b_8xb32_in1k':  # the others are the same mapping
        landed = assert_every_tensor_lands_once(source, expected, dst)
        assert landed['backbone.patch_embed.projection.weight'] == 'backbone.stem.conv.weight'
        assert landed['backbone.stages.2.3.repmlp_block.gp.conv1.conv.bias'] == \
            'backbone.stages.2.3.repmlp.fc1.bias'
        assert landed['backbone.downsample_layers.1.conv.weight'] == \
            'backbone.downsamples.1.conv.weight'


def test_cli_prints_the_model_name_last(tmp_path):
    src = save(numbered(OFFICIAL_LAYOUTS['RepMLPNet-D256']['deploy']), tmp_path / 'o.pth')
    dst = tmp_path / 'out' / 'converted.pth'
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        load_tool(IMPORTER).main([src, str(dst)])
    assert output.getvalue().strip().splitlines()[-1] == 'model: repmlpnet-d_deploy_in1k-256px'
    assert dst.is_file()


def test_a_damaged_checkpoint_names_the_closest_preset_and_the_difference(tmp_path):
    source = numbered(OFFICIAL_LAYOUTS['RepMLPNet-L256']['train'])
    del source['stages.2.7.repmlp_block.fc3.weight']
    with pytest.raises(OfficialImportError) as error:
        import_official_checkpoint(save(source, tmp_path / 'o.pth'), str(tmp_path / 'd.pth'))
    message = str(error.value)
    assert 'matches no RepMLPNet model of the zoo' in message
    assert 'closest is repmlpnet-l_8xb32_in1k-256px' in message
    assert 'backbone.stages.2.7.repmlp.fc3.weight' in message
    assert not (tmp_path / 'd.pth').exists()


def test_a_forced_model_must_be_of_the_checkpoints_family(tmp_path):
    src = save(numbered(OFFICIAL_LAYOUTS['RepMLPNet-B224']['train']), tmp_path / 'o.pth')
    with pytest.raises(OfficialImportError, match='not a RepMLPNet model of the zoo'):
        import_official_checkpoint(src, str(tmp_path / 'd.pth'), 'repmlp-res50-g8g8_8xb32_in1k')
    with pytest.raises(OfficialImportError, match='closest is repmlpnet-b_8xb32_in1k-256px'):
        import_official_checkpoint(src, str(tmp_path / 'd.pth'), 'repmlpnet-b_8xb32_in1k-256px')
