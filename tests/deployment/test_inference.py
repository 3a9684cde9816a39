"""optimize_for_inference: exact in float32, reduced precision only on request, inference-only,
and the MMEngine interface (MMPretrain's inference_model, the Runner's test loop) kept.

Compiles are slow on two cores, so the compiled models are few and shared: one tiny
RepMLP-ResNet classifier, one pure-MLP model with two RepMLPs, one tiny segmentor.
"""
import copy

import mmpretrain
import numpy as np
import pytest
import torch
from helpers_tools import (
    TINY_PURE_MLP_CONFIG,
    TINY_SEG_CONFIG,
    make_image_folders,
    make_segmentation_folders,
    relative_difference,
    run_tool,
    write_config,
)
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain import get_model

from mmrepmlp.apis import load_model
from mmrepmlp.deployment import forward_raw, optimize_for_inference
from mmrepmlp.reparam import randomize_norm_layers

TOLERANCE = 1e-5


@torch.no_grad()
def raw_outputs(model, inputs):
    return forward_raw(model, inputs)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The tiny classifier's config and checkpoint (non-trivial BN statistics), and the model
    loaded by MMPretrain's ``get_model`` (as the inferencers get it), in eval mode."""
    root = tmp_path_factory.mktemp('inference')
    config = write_config(root / 'tiny.py', make_image_folders(root / 'data'))
    checkpoint = root / 'tiny.pth'
    torch.save({'meta': {'dataset_meta': {'classes': ['a', 'b', 'c']}},
                'state_dict': randomize_norm_layers(load_model(config)[0]).state_dict()},
               checkpoint)
    model = get_model(config, pretrained=str(checkpoint)).eval()
    return config, str(checkpoint), model


@pytest.fixture(scope='module')
def optimized(tiny):
    """The tiny classifier optimized (compiled), and the lines it logged."""
    lines = []
    return optimize_for_inference(tiny[2], log=lines.append), lines


def test_optimized_classifier_equals_eager_in_float32(tiny, optimized):
    model, (fast, lines) = tiny[2], optimized
    inputs = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    assert relative_difference(raw_outputs(fast, inputs), raw_outputs(model, inputs)) <= TOLERANCE
    settings = fast.inference_settings
    assert settings.dtype is torch.float32 and settings.compiled and settings.channels_last
    assert any(name.endswith('repmlp') for name in settings.converted)
    assert type(fast) is type(model) and fast.backbone.deploy and not model.backbone.deploy
    assert lines[0].startswith('optimize_for_inference: converted')
    assert 'float32 (exact)' in lines[1] and 'torch.compile' in lines[1]


def test_mmpretrain_inference_model_runs_the_optimized_model(tiny, optimized):
    model, fast = tiny[2], optimized[0]
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    # Looked up when called: importing mmrepmlp lets it serve models built from configs.
    expected, result = (mmpretrain.inference_model(m, image) for m in (model, fast))

    assert result['pred_label'] == expected['pred_label']
    np.testing.assert_allclose(result['pred_scores'], expected['pred_scores'], rtol=0,
                               atol=TOLERANCE)


def test_train_mode_is_refused_and_the_original_still_trains(tiny, optimized):
    model = copy.deepcopy(tiny[2])

    with pytest.raises(ValueError, match='train mode; call model.eval'):
        optimize_for_inference(model.train())
    with pytest.raises(RuntimeError, match='inference-only'):
        optimized[0].train()
    assert not any(p.requires_grad for p in optimized[0].parameters())

    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    forward_raw(model, torch.randn(4, 3, 64, 64)).logsumexp(dim=1).mean().backward()
    optimizer.step()
    assert not model.backbone.deploy and model.state_dict().keys() == before.keys()
    changed = [key for key, value in model.state_dict().items()
               if not torch.equal(value, before[key])]
    assert 'head.fc.weight' in changed and any('local_perceptron' in key for key in changed)


def test_pure_mlp_model_exact_and_bfloat16_only_on_request():
    model = load_model(TINY_PURE_MLP_CONFIG)[0]
    model = randomize_norm_layers(model).eval()
    inputs = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = raw_outputs(model, inputs)

    compiled = optimize_for_inference(model, log=lambda line: None)
    assert relative_difference(raw_outputs(compiled, inputs), expected) <= TOLERANCE
    eager = optimize_for_inference(model, backend='eager', log=lambda line: None)
    assert not eager.inference_settings.compiled
    assert relative_difference(raw_outputs(eager, inputs), expected) <= TOLERANCE

    lines = []
    bfloat16 = optimize_for_inference(model, backend='eager', dtype=torch.bfloat16,
                                      log=lines.append)
    outputs = raw_outputs(bfloat16, inputs)
    assert outputs.dtype is torch.float32 and bfloat16.inference_settings.dtype is torch.bfloat16
    # rounded, not wrong: autocast runs the deploy model's ten convs and FCs in bf16, each
    # rounding its input and weights (u = 2**-8 each); roundings of independent signs grow as
    # the square root of their number, sqrt(20) u = 4.5 u, so 8 u = 2**-5 bounds it (about
    # 1.2 u is seen)
    assert TOLERANCE < relative_difference(outputs, expected) <= 2**-5
    assert 'torch.bfloat16 autocast (not exact)' in lines[-1]


def test_optimized_segmentor_predicts_as_eager(tmp_path):
    pytest.importorskip('mmseg')
    config = write_config(tmp_path / 'seg.py', make_segmentation_folders(tmp_path / 'data'),
                          base=TINY_SEG_CONFIG)
    model, cfg = load_model(config)
    model = randomize_norm_layers(model).eval()
    with DefaultScope.overwrite_default_scope(cfg.default_scope):  # MMSeg's data set
        batch = next(iter(Runner.build_dataloader(cfg.test_dataloader)))

    fast = optimize_for_inference(model, log=lambda line: None)
    with torch.no_grad():
        expected, predicted = model.test_step(batch)[0], fast.test_step(batch)[0]

    assert relative_difference(predicted.seg_logits.data, expected.seg_logits.data) <= TOLERANCE
    assert torch.equal(predicted.pred_sem_seg.data, expected.pred_sem_seg.data)


def test_tools_test_optimize_gives_the_same_metric(tiny, tmp_path):
    config, checkpoint, _ = tiny
    metrics = {}
    for name, extra in (('eager', []), ('optimized', ['--optimize'])):
        out = tmp_path / f'{name}.json'
        tested = run_tool(['test.py', config, checkpoint, '--work-dir', tmp_path / name,
                           '--out', out, '--out-item', 'metrics', *extra], tmp_path)
        assert tested.returncode == 0, tested.stderr[-3000:]
        metrics[name] = Config.fromfile(str(out))['accuracy/top1']
    assert 'optimize_for_inference: converted' in tested.stdout + tested.stderr
    assert metrics['optimized'] == metrics['eager']
