"""FaceRecognizer's deploy form is the embedding model alone: the margin head (the largest part at
millions of identities) is dropped by the conversion that deploy_convert and export run."""
import torch
from mmpretrain.registry import MODELS

import mmrepmlp  # noqa: F401  (registers the models)
from mmrepmlp.reparam import reparameterize_model

RECOGNIZER = dict(type='FaceRecognizer', backbone=dict(type='LeNet5', num_classes=-1),
                  neck=dict(type='GlobalAveragePooling'),
                  head=dict(type='PartialFCHead', num_classes=50, in_channels=120))


def test_conversion_drops_the_head_and_keeps_the_embeddings():
    torch.manual_seed(0)
    model = MODELS.build(RECOGNIZER).eval()
    images = torch.randn(2, 1, 32, 32)
    embeddings = model(images)

    deployed = reparameterize_model(model)

    assert any(key.startswith('head.') for key in model.state_dict())
    assert not any(key.startswith('head.') for key in deployed.state_dict())
    assert not deployed.with_head and deployed.deploy
    assert torch.equal(deployed(images), embeddings)
    built = MODELS.build({**RECOGNIZER, 'deploy': True})
    assert built.state_dict().keys() == deployed.state_dict().keys()
    deployed.switch_to_deploy()  # idempotent
    assert deployed.state_dict().keys() == built.state_dict().keys()


def test_one_process_head_needs_no_ddp_exclusions():
    model = MODELS.build(RECOGNIZER)
    assert model._ddp_params_and_buffers_to_ignore == []
    assert MODELS.build({**RECOGNIZER, 'deploy': True})._ddp_params_and_buffers_to_ignore == []
