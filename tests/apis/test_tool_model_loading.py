"""Model and checkpoint loading of the tools (mmrepmlp.apis.build)."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mmrepmlp.apis import ToolError, input_shape, load_config, read_checkpoint
from mmrepmlp.apis.build import state_dict_mismatch
from mmrepmlp.utils.errors import InputError, describe_exception

CLS_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'configs',
                      'tiny_repmlp_resnet.py')


def classifier_config(backbone, pipeline):
    return Config(dict(model=dict(backbone=backbone),
                       test_dataloader=dict(dataset=dict(pipeline=pipeline))))


def test_input_shape_sources():
    cfg = classifier_config(dict(type='ResNet'), [
        dict(type='LoadImageFromFile'), dict(type='ResizeEdge', scale=256),
        dict(type='CenterCrop', crop_size=(224, 192)), dict(type='PackInputs')])
    assert input_shape(cfg) == (3, 192, 224)  # crop sizes are (w, h)
    assert input_shape(cfg, shape=(32, 48)) == (3, 32, 48)

    cfg.model.backbone.update(img_size=(96, 64), in_channels=1)
    assert input_shape(cfg) == (1, 96, 64)


def test_input_shape_unknown_asks_for_shape():
    cfg = classifier_config(dict(type='ResNet'), [
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(2048, 1024), keep_ratio=True)])

    with pytest.raises(InputError, match='pass --shape H W'):
        input_shape(cfg)


def test_state_dict_mismatch_names_every_kind():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    good = model.state_dict()
    assert state_dict_mismatch(model, good) is None
    # released checkpoints often lack num_batches_tracked; PyTorch fills it in
    assert state_dict_mismatch(
        model, {k: v for k, v in good.items() if 'num_batches' not in k}) is None

    bad = dict(good)
    bad.pop('1.running_var')
    bad['2.weight'] = torch.zeros(1)
    bad['0.weight'] = torch.zeros(4, 3, 1, 1)

    message = state_dict_mismatch(model, bad)

    assert '1 missing keys (1.running_var)' in message
    assert '1 unexpected keys (2.weight)' in message
    assert '0.weight: (4, 3, 1, 1) vs (4, 3, 3, 3)' in message


@pytest.mark.parametrize('wrap', ['bare', 'state_dict', 'model'])
def test_read_checkpoint_layouts_and_module_prefix(tmp_path, wrap):
    weights = {'module.fc.weight': torch.ones(2, 2)}
    content = weights if wrap == 'bare' else {wrap: weights, 'meta': {'epoch': 3}}
    torch.save(content, tmp_path / 'c.pth')

    checkpoint, state_dict = read_checkpoint(str(tmp_path / 'c.pth'))

    assert list(state_dict) == ['fc.weight']
    assert 'state_dict' in checkpoint or 'model' in checkpoint


def test_read_checkpoint_rejects_non_weights(tmp_path):
    torch.save({'state_dict': {'fc.weight': 'not a tensor'}}, tmp_path / 'c.pth')

    with pytest.raises(InputError, match='no state dict of tensors'):
        read_checkpoint(str(tmp_path / 'c.pth'))


def test_bad_config_is_one_line(tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')

    with pytest.raises(ToolError) as error:
        load_config(str(broken))

    assert str(error.value).startswith(f'cannot read config {broken}')
    assert '\n' not in str(error.value)


def test_describe_exception_keeps_first_line_and_limit():
    text = describe_exception(ValueError('first line\nsecond line' + 'x' * 300))
    assert text == 'ValueError: first line'
    assert len(describe_exception(ValueError('y' * 500))) == 200
