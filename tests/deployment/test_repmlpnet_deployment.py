"""The deployment layer on RepMLPNet: optimize_for_inference is exact, int8 post-training
quantization keeps the accuracy of a trained model with every FC3 quantized (one FC per
share-set up to 8 of them, else one grouped conv), and quantization-aware training trains the
very kernels the int8 model gets.

The model is ``tests/data/configs/tiny_repmlpnet_digits.py`` (a small HierRepMLPNet on the
bundled digits), trained once for the module through the Runner for two epochs. The held-out
split is read in batches of 40 (it has 360 images): the compiled int8 model then compiles one
input shape.
"""
import os.path as osp

import pytest
import torch
from helpers_quantization import (
    CALIBRATION_BATCHES,
    assert_int8_kernels_are_the_fake_quantized_ones,
    train_digits,
    train_from_checkpoint,
)
from helpers_tools import TESTS_DIR, relative_difference
from mmengine.config import ConfigDict

from mmrepmlp.apis import fit_config_to_device
from mmrepmlp.apis.build import load_config
from mmrepmlp.apis.quick_start import dataloader_accuracy as accuracy
from mmrepmlp.deployment import (
    GroupedConvFC,
    fake_quantized_deploy_fcs,
    forward_raw,
    int8_weights,
    is_quant_aware,
    optimize_for_inference,
    prepare_quant_aware,
    quantize_int8,
)
from mmrepmlp.models import RepMLPNetBlock
from mmrepmlp.models.layers import GroupwiseFC
from mmrepmlp.reparam import randomize_norm_layers, reparameterize_model

CONFIG = osp.join(TESTS_DIR, 'data', 'configs', 'tiny_repmlpnet_digits.py')


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return train_digits(CONFIG, tmp_path_factory.mktemp('repmlpnet_digits'))


def repmlpnet_blocks(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, RepMLPNetBlock)}


def held_out_batch(runner, model):
    return model.data_preprocessor(next(iter(runner.val_dataloader)), False)['inputs']


def test_optimize_for_inference_is_exact_in_float32(digits):
    model, _, runner = digits
    inputs = held_out_batch(runner, model)
    with torch.no_grad():
        expected = forward_raw(model, inputs)

        optimized = optimize_for_inference(model, log=lambda line: None)

        assert relative_difference(forward_raw(optimized, inputs), expected) <= 1e-5
    settings = optimized.inference_settings
    assert settings.channels_last and len(settings.converted) == 4
    assert all(block.deploy for block in repmlpnet_blocks(optimized).values())
    assert not any(block.deploy for block in repmlpnet_blocks(model).values())  # a copy


def test_int8_ptq_keeps_the_accuracy_within_one_point(digits):
    model, _, runner = digits
    lines = []

    quantized = quantize_int8(model, runner.train_dataloader, CALIBRATION_BATCHES,
                              log=lines.append)

    float_accuracy = accuracy(model, runner.val_dataloader)
    int8_accuracy = accuracy(quantized, runner.val_dataloader)
    print(f'digits top-1: float32 {float_accuracy:.2f}%, int8 PTQ {int8_accuracy:.2f}%')
    assert abs(int8_accuracy - float_accuracy) <= 1.0
    # FC3 of 1 and 4 share-sets as one FC per share-set, of 16 and 32 as one grouped conv
    assert '2 groupwise FCs quantized as one FC per group, 2 as grouped 1x1 convs' in lines[0]
    int8_layers = int8_weights(quantized)
    for name, block in repmlpnet_blocks(model).items():
        (h, w), S = block.partition_size, block.num_sharesets
        # every FC3, the one of a single share-set too, is int8: its (S*h*w, h*w) kernel
        assert int8_layers[f'{name}.fc3'].flatten(1).shape == (S * h * w, h * w), name
        assert f'{name}.fc1' in int8_layers and f'{name}.fc2' in int8_layers


def test_qat_trains_the_kernels_the_int8_model_gets(digits, tmp_path):
    """The QAT hook on the trained checkpoint for a few iterations; then the int8 kernels of
    every RepMLP block (FC1, FC2 and the equivalent FC3) are its fake-quantized ones."""
    model, checkpoint, runner = digits
    cfg = fit_config_to_device(load_config(CONFIG))
    cfg.custom_hooks = [ConfigDict(type='QuantAwareTrainingHook')]
    cfg.optim_wrapper.optimizer.lr = 1e-4
    cfg.param_scheduler = None
    qat_model = train_from_checkpoint(cfg, checkpoint, tmp_path)

    blocks = repmlpnet_blocks(qat_model)
    assert len(blocks) == 4
    assert all(is_quant_aware(block) and not block.deploy for block in blocks.values())
    trained = qat_model.state_dict()
    assert any(not torch.equal(value, trained[key]) for key, value in model.state_dict().items()
               if value.is_floating_point())
    quantized = assert_int8_kernels_are_the_fake_quantized_ones(qat_model, blocks,
                                                                runner.train_dataloader)
    qat_accuracy = accuracy(qat_model, runner.val_dataloader)
    int8_accuracy = accuracy(quantized, runner.val_dataloader)
    print(f'digits top-1 after 4 QAT iterations: fake-quantized {qat_accuracy:.2f}%, int8 '
          f'{int8_accuracy:.2f}%')
    assert abs(int8_accuracy - qat_accuracy) <= 1.0


def test_the_block_runs_its_fake_quantized_deploy_form_and_keeps_its_keys():
    torch.manual_seed(0)
    block = randomize_norm_layers(RepMLPNetBlock(8, (5, 4), num_sharesets=4,
                                                 local_kernels=(1, 3))).eval()
    keys = set(block.state_dict())
    x = torch.randn(2, 8, 10, 8)
    with torch.no_grad():
        float_outputs = block(x)

        assert prepare_quant_aware(block) == [''] and is_quant_aware(block)

        assert set(block.state_dict()) == keys
        fake_quantized = block(x)
        assert torch.equal(fake_quantized,
                           block.forward_with_fcs(x, *fake_quantized_deploy_fcs(block)))
        assert 0 < relative_difference(fake_quantized, float_outputs) <= 0.05
        deploy = reparameterize_model(block)
        assert relative_difference(deploy(x), float_outputs) <= 1e-5


def test_forward_with_the_equivalent_fcs_is_the_block_and_differentiable():
    torch.manual_seed(0)
    block = randomize_norm_layers(RepMLPNetBlock(8, (5, 4), num_sharesets=4,
                                                 local_kernels=(1, 3))).double().eval()
    x = torch.randn(2, 8, 10, 8, dtype=torch.float64)
    fc1_weight, fc1_bias, fc3_weight, fc3_bias = block.get_equivalent_fc1_fc3_params()

    out = block.forward_with_fcs(x, (fc1_weight, fc1_bias), (block.fc2.weight, block.fc2.bias),
                                 (fc3_weight, fc3_bias))

    assert relative_difference(out, block(x)) <= 1e-10
    out.sum().backward()
    branch = block.local_perceptron['conv3x3']
    assert branch.conv.weight.grad.abs().sum() > 0 and block.fc1.weight.grad is not None


@pytest.mark.parametrize('groups, bias', [(1, True), (4, True), (4, False)])
def test_grouped_conv_fc_computes_the_groupwise_fc(groups, bias):
    """What int8 quantizes in place of RepMLPNet's FC3: the grouped 1x1 conv, the same
    function."""
    fc = GroupwiseFC(12, 8, groups=groups, bias=bias).eval()
    x = torch.randn(5, 12)
    conv = GroupedConvFC(fc)
    assert conv.conv.weight.shape == (8, 12 // groups, 1, 1) and conv.conv.groups == groups
    with torch.no_grad():
        assert relative_difference(conv(x), fc(x)) <= 1e-6
        assert relative_difference(conv.features_first(x), fc.features_first(x)) <= 1e-6
        by_group = x.reshape(5, groups, 12 // groups).transpose(0, 1)
        assert relative_difference(conv.grouped(by_group), fc.grouped(by_group)) <= 1e-6
