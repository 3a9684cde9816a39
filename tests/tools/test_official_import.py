"""tools/model_converters/official_to_mmrepmlp.py on synthetic official checkpoints: every
tensor has exactly the official key and shape (tests/data/official_v1/*.json) and its own
value, so a tensor landing in the wrong place, or left at its random init, is caught."""
import contextlib
import io
import os
import os.path as osp

import pytest
import torch
from helpers_tools import load_tool, official_state_dict
from mmpretrain import get_model

from mmrepmlp.models.official_import import OfficialImportError, import_official_checkpoint
from mmrepmlp.utils.checkpoint import safe_load

IMPORTER = 'model_converters/official_to_mmrepmlp.py'

TESTS_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO_ROOT = osp.dirname(TESTS_DIR)

EXPECTED_MODEL = {
    'RepMLP-Res50-light-224_train': 'repmlp-res50-light-g4_8xb32_in1k',
    'RepMLP-Res50-light-224_deploy': 'repmlp-res50-light-g4_deploy_in1k',
    'RepMLP-Res50-bottleneck-224_train': 'repmlp-res50-g8g8_8xb32_in1k',
    'RepMLP-Res50-bottleneck-224_deploy': 'repmlp-res50-g8g8_deploy_in1k',
}

# Official key -> mmrepmlp key, written out by hand for one tensor of every kind.
SPOT_CHECKS = {
    'stage0.0.conv.weight': 'backbone.stem.0.conv.weight',
    'stage1.0.shortcut.bn.running_var': 'backbone.stage1.0.shortcut.bn.running_var',
    'stage4.2.conv2.conv.weight': 'backbone.stage4.2.conv2.conv.weight',
    'linear.bias': 'head.fc.bias',
    'stage2.1.light_conv1.conv.weight': 'backbone.stage2.1.conv1.conv.weight',
    'stage3.5.light_conv3.bn.weight': 'backbone.stage3.5.conv3.bn.weight',
    'stage2.3.light_repmlp.fc1_fc2.fc1.weight': 'backbone.stage2.3.repmlp.fc1.weight',
    'stage3.1.light_repmlp.fc1_fc2.fc2.bias': 'backbone.stage3.1.repmlp.fc2.bias',
    'stage2.1.light_repmlp.avg.bn.running_mean': 'backbone.stage2.1.repmlp.global_bn.running_mean',
    'stage2.2.light_repmlp.fc3.weight': 'backbone.stage2.2.repmlp.fc3.weight',
    'stage2.2.light_repmlp.fc3.bias': 'backbone.stage2.2.repmlp.fc3.bias',
    'stage3.2.light_repmlp.fc3_bn.bias': 'backbone.stage3.2.repmlp.fc3_bn.bias',
    'stage3.4.light_repmlp.repconv5.conv.weight':
        'backbone.stage3.4.repmlp.local_perceptron.conv5x5.conv.weight',
    'stage2.1.btnk_conv2.bn.weight': 'backbone.stage2.1.conv2.bn.weight',
    'stage3.3.btnk_conv4.conv.bias': 'backbone.stage3.3.conv4.conv.bias',
    'stage3.1.btnk_conv5.conv.weight': 'backbone.stage3.1.conv5.conv.weight',
    'stage2.2.btnk_repmlp.repconv1.bn.num_batches_tracked':
        'backbone.stage2.2.repmlp.local_perceptron.conv1x1.bn.num_batches_tracked',
}


def save(obj, path):
    torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize('official', sorted(EXPECTED_MODEL))
def test_every_official_tensor_lands_in_its_place(official, tmp_path):
    source = official_state_dict(official)
    src = save(source, tmp_path / 'official.pth')
    dst = str(tmp_path / 'converted.pth')

    name = import_official_checkpoint(src, dst)

    assert name == EXPECTED_MODEL[official]
    loaded = get_model(name, pretrained=dst).state_dict()
    value_to_key = {int(v.reshape(-1)[0]): k for k, v in source.items()}
    landed = {}
    for key, tensor in loaded.items():
        assert tensor.min() == tensor.max(), f'{key} is not one source tensor (random init?)'
        value = int(tensor.reshape(-1)[0])
        assert value in value_to_key, f'{key} holds no source tensor'
        landed[value_to_key[value]] = key
    assert len(landed) == len(loaded) == len(source)  # a bijection: nothing lost or doubled
    for official_key, key in SPOT_CHECKS.items():
        if official_key in source:
            assert landed[official_key] == key
    checkpoint = safe_load(dst, map_location='cpu')
    assert checkpoint['meta']['model'] == name


@pytest.mark.parametrize('wrap', [
    lambda sd: {f'module.{k}': v for k, v in sd.items()},
    lambda sd: {'state_dict': sd, 'epoch': 10},
    lambda sd: {'model': {f'module.{k}': v for k, v in sd.items()}, 'optimizer': {}},
], ids=['module-prefix', 'state_dict-wrapper', 'model-wrapper-and-prefix'])
def test_prefix_and_wrappers_give_the_same_checkpoint(wrap, tmp_path):
    source = official_state_dict('RepMLP-Res50-bottleneck-224_deploy')
    plain = str(tmp_path / 'plain.pth')
    import_official_checkpoint(save(source, tmp_path / 'official.pth'), plain)
    wrapped = str(tmp_path / 'wrapped.pth')

    name = import_official_checkpoint(save(wrap(source), tmp_path / 'src.pth'), wrapped)

    assert name == 'repmlp-res50-g8g8_deploy_in1k'
    expected = safe_load(plain)['state_dict']
    actual = safe_load(wrapped)['state_dict']
    assert actual.keys() == expected.keys()
    assert all(torch.equal(actual[k], expected[k]) for k in expected)


def test_cli_prints_the_model_name_last(tmp_path):
    src = save(official_state_dict('RepMLP-Res50-bottleneck-224_deploy'), tmp_path / 'o.pth')
    dst = tmp_path / 'out' / 'converted.pth'
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        load_tool(IMPORTER).main([src, str(dst)])
    assert output.getvalue().strip().splitlines()[-1] == 'model: repmlp-res50-g8g8_deploy_in1k'
    assert dst.is_file()


def test_cli_reports_a_bad_source_in_one_line(tmp_path):
    src = tmp_path / 'broken.pth'
    src.write_bytes(b'not a checkpoint')
    with pytest.raises(SystemExit, match='^error: cannot read .*broken.pth'):
        load_tool(IMPORTER).main([str(src), str(tmp_path / 'dst.pth')])


def test_refuses_to_overwrite_the_source(tmp_path):
    src = save(official_state_dict('RepMLP-Res50-bottleneck-224_deploy'), tmp_path / 'o.pth')
    os.link(src, tmp_path / 'hardlink.pth')
    before = open(src, 'rb').read()
    for dst in (src, str(tmp_path / '.' / 'o.pth'), str(tmp_path / 'hardlink.pth')):
        with pytest.raises(OfficialImportError, match='over the input'):
            import_official_checkpoint(src, dst)
    assert open(src, 'rb').read() == before


def test_truncated_checkpoint_is_refused(tmp_path):
    src = save(official_state_dict('RepMLP-Res50-bottleneck-224_deploy'), tmp_path / 'o.pth')
    data = open(src, 'rb').read()
    with open(src, 'wb') as f:
        f.write(data[:len(data) // 2])
    dst = tmp_path / 'dst.pth'
    with pytest.raises(OfficialImportError, match='cannot read'):
        import_official_checkpoint(src, str(dst))
    assert not dst.exists()


def test_non_state_dict_is_refused(tmp_path):
    src = save([torch.zeros(3)], tmp_path / 'list.pth')
    with pytest.raises(OfficialImportError, match='not a dict of weights'):
        import_official_checkpoint(src, str(tmp_path / 'dst.pth'))


def test_foreign_checkpoint_lists_missing_and_unexpected_keys(tmp_path):
    foreign = {'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(1000, 2048)}
    dst = tmp_path / 'dst.pth'
    with pytest.raises(OfficialImportError) as error:
        import_official_checkpoint(save(foreign, tmp_path / 'tv.pth'), str(dst))
    message = str(error.value)
    assert 'matches no RepMLP-ResNet model' in message
    assert 'missing keys' in message and 'unexpected keys' in message
    assert 'conv1.weight' in message
    assert not dst.exists()


def test_damaged_official_checkpoint_names_the_difference(tmp_path):
    source = official_state_dict('RepMLP-Res50-light-224_train')
    del source['stage3.2.light_repmlp.fc3.weight']
    source['stage2.1.light_conv1.conv.weight'] = torch.zeros(64, 256, 1, 1)
    with pytest.raises(OfficialImportError) as error:
        import_official_checkpoint(save(source, tmp_path / 'o.pth'), str(tmp_path / 'd.pth'))
    message = str(error.value)
    assert 'closest is repmlp-res50-light-g4_8xb32_in1k' in message
    assert '1 missing keys' in message and 'backbone.stage3.2.repmlp.fc3.weight' in message
    assert '1 keys with another shape' in message
    assert 'backbone.stage2.1.conv1.conv.weight' in message


def test_forced_model_must_fit(tmp_path):
    src = save(official_state_dict('RepMLP-Res50-bottleneck-224_deploy'), tmp_path / 'o.pth')
    with pytest.raises(OfficialImportError, match='closest is repmlp-res50-g8g8_8xb32_in1k'):
        import_official_checkpoint(src, str(tmp_path / 'd.pth'), 'repmlp-res50-g8g8_8xb32_in1k')
    with pytest.raises(OfficialImportError, match='not a RepMLP-ResNet model of the zoo'):
        import_official_checkpoint(src, str(tmp_path / 'd.pth'), 'resnet50_8xb32_in1k')
