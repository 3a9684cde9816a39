"""int8 quantization on the bundled digits: post-training quantization keeps the accuracy,
quantization-aware training trains the very kernels the int8 model gets, and the
BN-after-FC3 recovery step inserts and fuses back exactly.

The pure-MLP model with two RepMLPs (``tests/data/configs/tiny_pure_mlp_digits.py``) is
trained once for the module through the Runner, for the digits config's 3 epochs (about half
a minute on two CPU cores). The held-out split is read in batches of 40 (it has 360 images):
the compiled int8 model then compiles one input shape.
"""
import itertools
import os.path as osp

import pytest
import torch
from helpers_quantization import (
    CALIBRATION_BATCHES,
    assert_int8_kernels_are_the_fake_quantized_ones,
    train_digits,
    train_from_checkpoint,
)
from helpers_tools import TINY_PURE_MLP_CONFIG, relative_difference

from mmrepmlp.apis import fit_config_to_device
from mmrepmlp.apis.build import load_config
from mmrepmlp.apis.quick_start import dataloader_accuracy as accuracy
from mmrepmlp.deployment import (
    FC3WithBN,
    SplitGroupwiseFC,
    fake_quantize_weight,
    fake_quantized_deploy_fcs,
    forward_raw,
    fuse_fc3_bn,
    insert_fc3_bn,
    int8_weights,
    is_quant_aware,
    prepare_quant_aware,
    quantize_int8,
)
from mmrepmlp.deployment.quantization.ptq import MAX_SPLIT_GROUPS
from mmrepmlp.models.blocks import RepMLPBlock
from mmrepmlp.models.layers import GroupwiseFC
from mmrepmlp.reparam import randomize_norm_layers, reparameterize_model
from mmrepmlp.utils import find_repo_file
from mmrepmlp.utils.errors import InputError

QAT_CONFIG = 'repmlp_cifar/pure-mlp_1xb32_digits-qat.py'
# The tested model reaches 87% (seeded); chance is 10%. A floor well under what it reliably
# reaches, so that both sides of a comparison at chance (a broken model and a broken
# quantization) cannot pass.
MIN_ACCURACY = 80


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return train_digits(TINY_PURE_MLP_CONFIG, tmp_path_factory.mktemp('digits'))


def repmlp_blocks(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, RepMLPBlock)}


def test_int8_ptq_keeps_the_accuracy_within_one_point(digits):
    model, _, runner = digits
    lines = []

    quantized = quantize_int8(model, runner.train_dataloader, CALIBRATION_BATCHES, log=lines.append)

    float_accuracy = accuracy(model, runner.val_dataloader)
    int8_accuracy = accuracy(quantized, runner.val_dataloader)
    print(f'digits top-1: float32 {float_accuracy:.2f}%, int8 PTQ {int8_accuracy:.2f}%')
    assert min(float_accuracy, int8_accuracy) >= MIN_ACCURACY
    assert abs(int8_accuracy - float_accuracy) <= 1.0
    int8_layers = int8_weights(quantized)
    assert all(f'{name}.fc3' in int8_layers for name in repmlp_blocks(model))
    assert 'calibrated on 8 batches (256 images)' in lines[0]
    with pytest.raises(RuntimeError, match='inference-only'):
        quantized.train()


def test_qat_trains_the_kernels_the_int8_model_gets(digits, tmp_path):
    """The QAT config, from the trained checkpoint, for a few iterations."""
    model, checkpoint, runner = digits
    cfg = fit_config_to_device(load_config(osp.join(find_repo_file('configs'), QAT_CONFIG)))
    tiny = load_config(TINY_PURE_MLP_CONFIG).model  # the QAT config on the tested model
    cfg.model.backbone.update(arch=tiny.backbone.arch, out_indices=tiny.backbone.out_indices)
    cfg.model.head.in_channels = tiny.head.in_channels
    qat_model = train_from_checkpoint(cfg, checkpoint, tmp_path)

    blocks = repmlp_blocks(qat_model)
    assert blocks and all(is_quant_aware(block) and not block.deploy for block in blocks.values())
    trained = qat_model.state_dict()
    assert any(not torch.equal(value, trained[key]) for key, value in model.state_dict().items()
               if value.is_floating_point())
    quantized = assert_int8_kernels_are_the_fake_quantized_ones(qat_model, blocks,
                                                                runner.train_dataloader)
    qat_accuracy = accuracy(qat_model, runner.val_dataloader)
    int8_accuracy = accuracy(quantized, runner.val_dataloader)
    print(f'digits top-1 after 4 QAT iterations: fake-quantized {qat_accuracy:.2f}%, int8 '
          f'{int8_accuracy:.2f}%')
    assert min(qat_accuracy, int8_accuracy) >= MIN_ACCURACY
    assert abs(int8_accuracy - qat_accuracy) <= 1.0


@pytest.mark.parametrize('bias', [True, False])
def test_split_groupwise_fc_computes_the_groupwise_fc(bias):
    """What int8 quantizes in place of a groupwise FC3: one FC per group, the same function."""
    fc = GroupwiseFC(12, 8, groups=4, bias=bias).eval()
    x = torch.randn(5, 12)
    split = SplitGroupwiseFC(fc)
    assert [tuple(linear.weight.shape) for linear in split.fcs] == [(2, 3)] * 4
    with torch.no_grad():
        assert relative_difference(split(x), fc(x)) <= 1e-6
        assert relative_difference(split.features_first(x), fc.features_first(x)) <= 1e-6
        by_group = x.reshape(5, 4, 3).transpose(0, 1)
        assert relative_difference(split.grouped(by_group), fc.grouped(by_group)) <= 1e-6


def test_the_network_is_exported_in_channels_last():
    """The int8 convs run in channels_last: the RepMLP block is exported on its branch for
    it, whose reassembly builds the (N, H, W, C) map and views it as (N, C, H, W)."""
    torch.manual_seed(0)
    block = randomize_norm_layers(RepMLPBlock(8, 8, 8, 4, groups=4, local_kernels=(1, 3)))
    block.eval().switch_to_deploy()
    calibration = [torch.randn(2, 8, 8, 8) for _ in range(2)]  # NCHW, as most data comes
    int8 = quantize_int8(block, calibration, compile=False, log=lambda line: None)
    permutes = [node.args[1] for node in int8.graph_module.graph.nodes
                if node.target is torch.ops.aten.permute.default]
    assert permutes[-1] == [0, 3, 1, 2]
    with torch.no_grad():
        assert relative_difference(int8(calibration[0]), block(calibration[0])) <= 0.1


def test_the_groups_of_a_split_fc3_read_one_quantized_tensor():
    """One activation scale per FC3, quantized once before the split into groups: the
    per-group FCs dequantize views of one int8 tensor."""
    torch.manual_seed(0)
    block = randomize_norm_layers(RepMLPBlock(8, 8, 8, 4, groups=4, local_kernels=(1, 3)))
    block.eval().switch_to_deploy()
    calibration = [torch.randn(2, 8, 8, 8) for _ in range(2)]
    int8 = quantize_int8(block, calibration, compile=False, log=lambda line: None)
    graph = int8.graph_module.graph
    quantize = torch.ops.quantized_decomposed.quantize_per_tensor.default
    dequantize = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    fc3_inputs = [node.args[0] for node in graph.nodes
                  if node.target is torch.ops.aten.linear.default
                  and '.fcs.' in list(node.meta['nn_module_stack'])[-1]]
    assert len(fc3_inputs) == 4 and all(n.target is dequantize for n in fc3_inputs)
    assert len({tuple(n.args[1:]) for n in fc3_inputs}) == 1  # one scale and zero point

    def quantized_source(node):
        while node.target is not quantize:
            node = node.args[0]
        return node

    assert len({quantized_source(n.args[0]) for n in fc3_inputs}) == 1
    with torch.no_grad():
        x = calibration[0]
        assert relative_difference(int8(x), block(x)) <= 0.05


def test_a_repmlp_block_of_more_groups_than_split_quantizes_as_a_grouped_conv():
    """Past MAX_SPLIT_GROUPS, FC3 is handed over as one grouped 1x1 conv, which the deploy
    forward calls per group as it calls the FC it replaces."""
    torch.manual_seed(0)
    groups = MAX_SPLIT_GROUPS * 2
    block = randomize_norm_layers(RepMLPBlock(groups, groups, 8, 4, groups=groups,
                                              local_kernels=(1, 3)))
    block.eval().switch_to_deploy()
    calibration = [torch.randn(2, groups, 8, 8) for _ in range(2)]
    lines = []
    int8 = quantize_int8(block, calibration, compile=False, log=lines.append)
    assert '0 groupwise FCs quantized as one FC per group, 1 as grouped 1x1 convs' in lines[0]
    with torch.no_grad():
        x = calibration[0]
        assert relative_difference(int8(x), block(x)) <= 0.05


def test_prepare_quant_aware_needs_a_repmlp_block():
    with pytest.raises(InputError, match='has no RepMLP block'):
        prepare_quant_aware(torch.nn.Conv2d(8, 8, 3))


def test_prepare_quant_aware_keeps_the_keys_and_leaves_the_deploy_form_alone():
    torch.manual_seed(0)
    block = randomize_norm_layers(RepMLPBlock(4, 4, 8, 4, groups=2, local_kernels=(1, 3)))
    block.eval()
    keys = set(block.state_dict())
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        float_outputs = block(x)

        assert prepare_quant_aware(block) == [''] and is_quant_aware(block)

        assert set(block.state_dict()) == keys
        fake_quantized = block(x)
        assert torch.equal(fake_quantized,
                           block.forward_with_fcs(x, *fake_quantized_deploy_fcs(block)))
        assert 0 < relative_difference(fake_quantized, float_outputs) <= 0.05
        block.switch_to_deploy()
        assert relative_difference(block(x), float_outputs) <= 1e-5
    assert prepare_quant_aware(block) == [''] and isinstance(block, RepMLPBlock)


def test_bn_after_fc3_inserts_and_fuses_back_exactly(digits):
    model, _, runner = digits
    deploy = reparameterize_model(model).eval()
    plain_keys = deploy.state_dict().keys()
    inputs = deploy.data_preprocessor(next(iter(runner.val_dataloader)), False)['inputs']
    with torch.no_grad():
        expected = forward_raw(deploy, inputs)

    names = insert_fc3_bn(deploy, runner.train_dataloader, max_batches=2, quant_aware=False)

    assert names == list(repmlp_blocks(model))
    with torch.no_grad():
        assert relative_difference(forward_raw(deploy, inputs), expected) <= 1e-5
    fine_tune(deploy, runner.train_dataloader, steps=3)
    with torch.no_grad():
        tuned = forward_raw(deploy.eval(), inputs)
    assert relative_difference(tuned, expected) > 1e-5  # the fine-tuning changed the model

    assert fuse_fc3_bn(deploy) == names
    assert all(isinstance(block.fc3, GroupwiseFC) for block in repmlp_blocks(deploy).values())
    assert deploy.state_dict().keys() == plain_keys
    with torch.no_grad():
        assert relative_difference(forward_raw(deploy, inputs), tuned) <= 1e-5


def test_bn_after_fc3_fine_tunes_the_int8_kernel(digits):
    model, _, runner = digits
    deploy = reparameterize_model(model).eval()

    insert_fc3_bn(deploy, runner.train_dataloader, max_batches=1)

    fc3 = next(iter(repmlp_blocks(deploy).values())).fc3
    assert isinstance(fc3, FC3WithBN)
    assert torch.equal(fc3.fc.weight, fake_quantize_weight(fc3.fc.parametrizations.weight.original))
    fuse_fc3_bn(deploy)
    assert not any('parametrizations' in key for key in deploy.state_dict())


def fine_tune(model, dataloader, steps):
    """A few SGD steps of the classification loss, in train mode."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for batch in itertools.islice(dataloader, steps):
        losses = model(**model.data_preprocessor(batch, True), mode='loss')
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()


def small_convnet():
    """A small random conv net: enough to quantize in seconds."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 4)).eval()


def calibration_batches(count=4, batch=8):
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(batch, 3, 8, 8, generator=generator) for _ in range(count)]


def outlier_batches():
    batches = calibration_batches()
    batches[1][0, 0, 0, 0] = 1e6  # one pixel
    return batches


def raw_pixel_batches():
    batches = calibration_batches()
    batches[2] = torch.randint(0, 256, batches[2].shape, generator=torch.Generator()).float()
    return batches


@pytest.mark.parametrize('make_batches, layer', [
    (outlier_batches, r'the input'), (raw_pixel_batches, r'the output of 1 \(ReLU\)')])
def test_int8_refuses_a_calibration_that_makes_it_differ_from_float32(make_batches, layer):
    with pytest.raises(InputError, match=f'held-back calibration batch.*{layer} was calibrated '
                       'to'):
        quantize_int8(small_convnet(), make_batches(), compile=False, log=lambda line: None)

    lines = []
    quantize_int8(small_convnet(), make_batches(), compile=False, strict=False,
                  log=lines.append)
    assert lines[0].startswith('quantize_int8: warning: the int8 model differs')


def test_int8_accepts_a_sound_calibration_and_reports_its_difference():
    lines = []
    quantize_int8(small_convnet(), calibration_batches(), compile=False, log=lines.append)
    assert 'from float32 (relative RMS) on the held-back batch' in lines[0]


@pytest.mark.parametrize('value, message', [(float('nan'), 'batch 2 holds 1 NaN or infinite'),
                                            (float('inf'), 'batch 2 holds 1 NaN or infinite')])
def test_int8_refuses_non_finite_calibration_inputs(value, message):
    batches = calibration_batches()
    batches[2][0, 1, 2, 3] = value
    with pytest.raises(InputError, match=message):
        quantize_int8(small_convnet(), batches, compile=False, log=lambda line: None)


def test_int8_refuses_constant_calibration_inputs():
    batches = [torch.zeros(8, 3, 8, 8)] * 4
    with pytest.raises(InputError, match='every calibration value is 0'):
        quantize_int8(small_convnet(), batches, compile=False, log=lambda line: None)


def test_int8_calibrated_on_single_images_runs_any_batch_size():
    model = small_convnet()
    batches = [batch[:1] for batch in calibration_batches()]

    quantized = quantize_int8(model, batches, compile=False, log=lambda line: None)

    inputs = calibration_batches(1, 8)[0]
    with torch.no_grad():
        assert relative_difference(quantized(inputs), model(inputs)) <= 0.1
        assert quantized(inputs[:1]).shape == (1, 4)
