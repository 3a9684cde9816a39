"""One face image's embedding through MMPretrain's API: ``inference_model`` (by config path and
checkpoint, by model object, by zoo name) and ``FaceEmbeddingInferencer`` return the face
model's embedding, and a model whose task no inferencer serves gets a clear error."""
import os.path as osp
import types

import cv2
import mmpretrain
import numpy as np
import pytest
import torch
from helpers_tools import REPO_ROOT
from PIL import Image

from mmrepmlp.apis import load_model
from mmrepmlp.deployment import FaceEmbeddingInferencer

FACE_CONFIG = osp.join(REPO_ROOT, 'configs', 'repmlp_face', 'repmlp-faceres50_8xb64_ms1mv2.py')
TINY_FACE = f"""_base_ = [{FACE_CONFIG!r}]
model = dict(
    backbone=dict(_delete_=True, type='RepMLPResNet', img_size=96, out_indices=(3, ),
                  arch=dict(num_blocks=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                            block_type=('base', 'bottleneck', 'bottleneck', 'base'), r=2,
                            groups=2, partition=6, local_kernels=(1, 3))),
    neck=dict(in_channels=128, in_size=3, embedding_dim=16),
    head=dict(num_classes=4, in_channels=16))
"""


@pytest.fixture(scope='module')
def face(tmp_path_factory):
    root = tmp_path_factory.mktemp('face_inference')
    config = root / 'tiny_face.py'
    config.write_text(TINY_FACE)
    model = load_model(str(config))[0]
    for module in model.modules():  # statistics that make BN no identity
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
    torch.save({'state_dict': model.state_dict()}, root / 'tiny_face.pth')
    pixels = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / 'face.png')
    # the verification protocol's embedding: RGB, (x - 127.5) / 127.5, 96x96, plus the mirror
    resized = cv2.resize(pixels, (96, 96), interpolation=cv2.INTER_LINEAR)  # as mmcv's Resize
    inputs = torch.from_numpy((resized.transpose(2, 0, 1)[None] - 127.5) / 127.5).float()
    with torch.no_grad():
        expected = (model(inputs) + model(inputs.flip(3)))[0].numpy()
    return str(config), str(root / 'tiny_face.pth'), str(root / 'face.png'), expected


def test_inference_model_by_config_returns_the_embedding(face):
    config, checkpoint, image, expected = face

    result = mmpretrain.inference_model(config, image, pretrained=checkpoint)

    assert set(result) == {'pred_embedding'} and result['pred_embedding'].shape == (16, )
    assert np.allclose(result['pred_embedding'], expected, rtol=1e-4, atol=1e-5)


def test_inference_model_by_model_and_the_inferencer(face):
    config, checkpoint, image, expected = face
    model = mmpretrain.get_model(config, pretrained=checkpoint)

    by_model = mmpretrain.inference_model(model, image)['pred_embedding']
    batch = FaceEmbeddingInferencer(config, pretrained=checkpoint)([image, image])

    assert np.allclose(by_model, expected, rtol=1e-4, atol=1e-5)
    assert len(batch) == 2 and np.allclose(batch[1]['pred_embedding'], by_model)


def test_inference_model_by_zoo_name(face):
    _, _, image, _ = face

    result = mmpretrain.inference_model('repmlp-faceres50_8xb64_ms1mv2', image)

    assert result['pred_embedding'].shape == (512, )


def test_a_task_without_inferencer_is_named():
    model = mmpretrain.get_model(FACE_CONFIG.replace('repmlp_face/repmlp-faceres50_8xb64_ms1mv2',
                                                     'repmlp_cifar/pure-mlp_1xb32_digits'))
    model._metainfo = types.SimpleNamespace(results=[types.SimpleNamespace(task='Pose')])

    with pytest.raises(NotImplementedError, match="task 'Pose'"):
        mmpretrain.inference_model(model, np.zeros((32, 32, 1), np.uint8))
