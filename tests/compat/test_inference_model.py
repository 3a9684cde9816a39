"""mmrepmlp.compat.inference_model: mmpretrain's inference_model on a model built from a config
file (such as the deploy config that tools/deploy_convert.py writes)."""
import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmrepmlp  # noqa: F401  (applies the fixes)

TINY_CLASSIFIER = dict(
    model=dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                      out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64,
                  loss=dict(type='CrossEntropyLoss'))),
    test_dataloader=dict(dataset=dict(type='CustomDataset', pipeline=[
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=32),
        dict(type='PackInputs')])))


@pytest.fixture
def config_and_checkpoint(tmp_path):
    from mmpretrain import get_model

    config = tmp_path / 'tiny_cls.py'
    Config(TINY_CLASSIFIER).dump(str(config))
    checkpoint = tmp_path / 'tiny_cls.pth'
    torch.save({'state_dict': get_model(str(config)).state_dict(),
                'meta': {'dataset_meta': {'classes': ['cat', 'dog', 'bird']}}}, checkpoint)
    return str(config), str(checkpoint)


def test_config_built_model_fails_upstream_and_runs_with_fix(config_and_checkpoint):
    import mmpretrain
    from mmpretrain import get_model

    config, checkpoint = config_and_checkpoint
    image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    model = get_model(config, pretrained=checkpoint)
    with pytest.raises(NotImplementedError, match='No available inferencer'):
        mmpretrain.inference_model.__wrapped__(model, image)

    result = mmpretrain.inference_model(model, image)

    assert result['pred_class'] in ('cat', 'dog', 'bird')
    assert len(result['pred_scores']) == 3
    by_path = mmpretrain.inference_model(config, image, pretrained=checkpoint)
    assert np.allclose(by_path['pred_scores'], result['pred_scores'])
