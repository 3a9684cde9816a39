"""ImageNet-pretrained RepMLP-ResNet weights into a segmentation backbone (init_cfg Pretrained
with prefix 'backbone.'): every tensor loads except the Global Perceptrons' FC1/FC2, whose
sizes follow the feature maps (random, as in the paper, and named once in the log); any other
mismatch is an error naming the key and both shapes."""
import re

import pytest
import torch
from helpers_tools import official_state_dict
from mmengine.logging import MMLogger

from mmrepmlp.models import RepMLPResNet
from mmrepmlp.models.official_import import import_official_checkpoint
from mmrepmlp.utils.errors import InputError

TINY = dict(num_blocks=(1, 2, 2, 1), widths=(16, 32, 64, 128), r=2, groups=2, partition=4,
            block_type=('base', 'bottleneck', 'bottleneck', 'base'), local_kernels=(1, 3))
OS8 = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 1, 4), contract_dilation=True,
           out_indices=(0, 1, 2, 3))


def save_classifier_backbone(backbone, path):
    """An MMPretrain-style checkpoint: the backbone's tensors under ``backbone.``."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, 128)
    torch.save({'state_dict': state, 'meta': {'epoch': 100}}, path)


def segmentation_backbone(checkpoint, arch=TINY, img_size=96):
    return RepMLPResNet(arch, img_size=img_size, **OS8, init_cfg=dict(
        type='Pretrained', prefix='backbone.', checkpoint=str(checkpoint)))


def test_everything_but_fc1_fc2_loads_and_the_log_names_them(tmp_path):
    torch.manual_seed(0)
    imagenet = RepMLPResNet(TINY, img_size=128)  # c3 16x16, c4 8x8: 16 and 4 partitions
    save_classifier_backbone(imagenet, tmp_path / 'imagenet.pth')
    seg = segmentation_backbone(tmp_path / 'imagenet.pth')  # c3 and c4 12x12: 9 each
    before = {k: v.clone() for k, v in seg.state_dict().items()}
    MMLogger.get_instance('pretrained_test', log_file=str(tmp_path / 'log.txt'))

    seg.init_weights()

    source = imagenet.state_dict()
    global_fcs = [k for k in seg.state_dict() if '.repmlp.fc1.' in k or '.repmlp.fc2.' in k]
    for key, value in seg.state_dict().items():
        expected = before[key] if key in global_fcs else source[key]  # random FC1/FC2
        assert torch.equal(value, expected), key
    assert {k.split('.')[0] for k in global_fcs} == {'stage2', 'stage3'}
    messages = [line for line in open(tmp_path / 'log.txt') if 'FC1/FC2' in line]
    assert len(messages) == 1 and all(key in messages[0] for key in global_fcs)


def test_any_other_mismatch_is_an_error_naming_the_key_and_shapes(tmp_path):
    other = dict(TINY, widths=(16, 32, 64, 256))
    save_classifier_backbone(RepMLPResNet(other, img_size=128), tmp_path / 'other.pth')
    seg = segmentation_backbone(tmp_path / 'other.pth')

    with pytest.raises(InputError) as error:
        seg.init_weights()

    message = str(error.value)
    assert 'does not fit RepMLPResNet beyond the FC1/FC2 sizes' in message
    assert re.search(r'keys with another shape \(checkpoint vs model\) \(stage4\.\S+: '
                     r'\([\d, ]+\) vs \([\d, ]+\)', message), message


def test_an_imported_official_checkpoint_initializes_a_segmentation_backbone(tmp_path):
    official = tmp_path / 'RepMLP-Res50-bottleneck-224_train.pth'
    torch.save(official_state_dict('RepMLP-Res50-bottleneck-224_train'), official)
    imported = tmp_path / 'imported.pth'
    assert import_official_checkpoint(str(official), str(imported)) == \
        'repmlp-res50-g8g8_8xb32_in1k'
    arch = dict(RepMLPResNet.arch_settings['res50-g8g8'], fc1_fc2_reduction=(1, 4, 8, 1))
    with torch.device('meta'):
        shapes = {k: v.shape for k, v in segmentation_backbone(
            imported, arch, 224).state_dict().items()}
    seg = segmentation_backbone(imported, arch, 224)

    seg.init_weights()

    loaded = torch.load(imported, mmap=True)['state_dict']
    for key, value in seg.state_dict().items():
        assert value.shape == shapes[key]
        if '.repmlp.fc1.' in key or '.repmlp.fc2.' in key:  # random, even if same-sized
            source = loaded[f'backbone.{key}']
            assert source.shape != value.shape or not torch.equal(value, source), key
        else:  # every other tensor is the checkpoint's: none may be missing from it
            assert f'backbone.{key}' in loaded, f'{key} is not in the imported checkpoint'
            assert torch.equal(value, loaded[f'backbone.{key}']), key


def test_strict_false_loads_what_fits_of_an_official_model_and_names_the_rest(tmp_path):
    # no official g4/8-320 model exists: start from the released Bottleneck g8/8 at 224
    official = tmp_path / 'RepMLP-Res50-bottleneck-224_train.pth'
    torch.save(official_state_dict('RepMLP-Res50-bottleneck-224_train'), official)
    imported = tmp_path / 'imported.pth'
    import_official_checkpoint(str(official), str(imported))
    seg = RepMLPResNet('res50-g4g8-seg', img_size=96, **OS8, init_cfg=dict(
        type='Pretrained', prefix='backbone.', checkpoint=str(imported), strict=False))
    before = {k: v.clone() for k, v in seg.state_dict().items()}
    MMLogger.get_instance('strict_false_test', log_file=str(tmp_path / 'log.txt'))

    seg.init_weights()

    loaded = torch.load(imported, mmap=True)['state_dict']
    kept = []
    for key, value in seg.state_dict().items():
        source = loaded.get(f'backbone.{key}')
        if source is not None and source.shape == value.shape:
            assert torch.equal(value, source), key
        else:
            assert torch.equal(value, before[key]), key
            kept.append(key)
    assert any(k.startswith('stage1.') for k in seg.state_dict() if k not in kept)
    assert any('.repmlp.fc3' in k for k in kept)  # g8 -> g4 and h 7 -> 10
    log = [line for line in open(tmp_path / 'log.txt') if 'strict=False' in line]
    assert len(log) == 1 and 'stage2.1.repmlp' in log[0]
