"""HierRepMLPNet and its blocks: exact conversion in float32 and float64, the share-set
layout in training mode, maps of several partitions, and the OpenMMLab backbone options."""
import copy

import pytest
import torch
import torch.nn.functional as F
from helpers_tools import relative_difference
from torch.nn.modules.batchnorm import _BatchNorm

from mmrepmlp.models import HierRepMLPNet, RepMLPNetBlock, RepMLPNetUnit
from mmrepmlp.reparam import randomize_norm_layers, reparameterize_model
from mmrepmlp.utils.errors import InputError

TINY = dict(channels=(8, 16, 16, 32), num_blocks=(1, 1, 2, 1), num_sharesets=(1, 2, 4, 8))
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def tiny(**kwargs):
    torch.manual_seed(0)
    return randomize_norm_layers(HierRepMLPNet(TINY, img_size=64, **kwargs))


def block(dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    arguments = dict(channels=8, partition_size=(5, 4), num_sharesets=4,
                     local_kernels=(1, 3, (1, 5)))
    return randomize_norm_layers(RepMLPNetBlock(**{**arguments, **kwargs})).to(dtype).eval()


def assert_close(actual, expected, dtype):
    for a, e in zip(actual if isinstance(actual, tuple) else (actual, ),
                    expected if isinstance(expected, tuple) else (expected, ), strict=True):
        difference = relative_difference(a, e)
        assert difference <= TOLERANCE[dtype], f'relative difference {difference:.1e}'


# ----------------------------------------------------------------------------- the block
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('module', ['block', 'unit', 'backbone'])
def test_conversion_is_exact(module, dtype):
    torch.manual_seed(0)
    if module == 'block':
        model, x = block(dtype), torch.randn(2, 8, 5, 4, dtype=dtype)
    elif module == 'unit':
        model = RepMLPNetUnit(8, 6, num_sharesets=2, local_kernels=(1, 3, 5))
        model, x = randomize_norm_layers(model).to(dtype).eval(), torch.randn(2, 8, 6, 6,
                                                                              dtype=dtype)
    else:
        model, x = tiny(out_indices=(0, 1, 2, 3)).to(dtype).eval(), torch.randn(
            2, 3, 64, 64, dtype=dtype)
    with torch.no_grad():
        expected = model(x)
        deploy = reparameterize_model(model)
        assert_close(deploy(x), expected, dtype)
    assert not any(isinstance(m, RepMLPNetBlock) and not m.deploy for m in deploy.modules())


def test_switch_to_deploy_is_idempotent_and_equals_deploy_true():
    model = tiny().eval()
    model.switch_to_deploy()
    state = copy.deepcopy(model.state_dict())
    model.switch_to_deploy()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    built = HierRepMLPNet(TINY, img_size=64, deploy=True)
    built.load_state_dict(state)  # strict: the same layout
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(built.eval()(x)[0], model(x)[0])


def test_fc3_bn_normalizes_each_shareset_over_its_channels_and_pixels():
    """Training mode: the BN's batch statistics are per share-set (channel ``c`` is share-set
    ``c mod S``) over every row and pixel, as the official ``BatchNorm2d(S)``."""
    model = block(torch.float64, local_kernels=())
    model.fc3_bn.momentum = 1.0  # running statistics = the last batch's
    x = torch.randn(3, 8, 5, 4, dtype=torch.float64)
    model.train()(x)
    fc3 = model.fc3(x.reshape(-1, 4 * 20))  # rows of 4 share-sets' 20 pixels
    per_shareset = fc3.reshape(-1, 4, 20).transpose(0, 1).reshape(4, -1)
    torch.testing.assert_close(model.fc3_bn.running_mean, per_shareset.mean(1))
    torch.testing.assert_close(model.fc3_bn.running_var, per_shareset.var(1))


def unit_attention(model):
    """A copy whose channel attention is exactly 1 (sigmoid(40) rounds to 1 in float64)."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.fc2.weight.zero_()
        model.fc2.bias.fill_(40)
    return model


@pytest.mark.parametrize('deploy', [False, True])
def test_each_partition_is_computed_in_place(deploy):
    model = block()
    if deploy:
        model.switch_to_deploy()
    plain = unit_attention(model)
    x = torch.randn(2, 8, 10, 12, dtype=torch.float64)  # 2 x 3 partitions of 5 x 4
    with torch.no_grad():
        out = plain(x)
        for i in range(2):
            for j in range(3):
                rows, cols = slice(5 * i, 5 * i + 5), slice(4 * j, 4 * j + 4)
                torch.testing.assert_close(out[:, :, rows, cols], plain(x[:, :, rows, cols]),
                                           rtol=1e-12, atol=1e-12)
        # other sizes: zero-padded at the bottom and right to whole partitions, cropped back
        odd = x[:, :, :7, :9]
        torch.testing.assert_close(plain(odd), plain(F.pad(odd, (0, 3, 0, 3)))[:, :, :7, :9],
                                   rtol=1e-12, atol=1e-12)


def test_the_attention_is_the_whole_maps():
    model = block()
    x = torch.randn(2, 8, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        attention = torch.sigmoid(model.fc2(F.relu(model.fc1(x.mean((2, 3))))))
        torch.testing.assert_close(model(x), unit_attention(model)(x) * attention[..., None, None])


def test_block_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match='num_sharesets'):
        RepMLPNetBlock(8, 4, num_sharesets=3)
    with pytest.raises(ValueError, match='local_kernels'):
        RepMLPNetBlock(8, 4, local_kernels=(2, ))
    with pytest.raises(ValueError, match='gp_reduction'):
        RepMLPNetBlock(8, 4, gp_reduction=16)
    with pytest.raises(ValueError, match=r'\(N, 8, H, W\)'):
        RepMLPNetBlock(8, 4)(torch.randn(1, 4, 4, 4))


# -------------------------------------------------------------------------- the backbone
def test_presets_are_case_insensitive_and_custom_archs_are_checked():
    with torch.device('meta'):
        assert HierRepMLPNet('T').out_channels == [64, 128, 256, 512]
        assert HierRepMLPNet('l', img_size=256).stages[3][0].repmlp.num_sharesets == 256
    with pytest.raises(ValueError, match="unknown arch 'x'"):
        HierRepMLPNet('x')
    with pytest.raises(ValueError, match=r"lacks \['num_sharesets'\]"):
        HierRepMLPNet(dict(channels=(8, 16), num_blocks=(1, 1)))
    with pytest.raises(ValueError, match='need one entry per stage each, got 4, 2, 4'):
        HierRepMLPNet(dict(TINY, num_blocks=(1, 1)), img_size=64)
    with pytest.raises(ValueError, match='stage 2 .*num_sharesets'):
        HierRepMLPNet(dict(TINY, num_sharesets=(1, 3, 4, 8)), img_size=64)
    with pytest.raises(ValueError, match='larger_input'):
        HierRepMLPNet(TINY, img_size=64, larger_input='crop')
    with pytest.raises(ValueError, match='img_size'):
        HierRepMLPNet(TINY, img_size=16)  # stage 4 would have no map


def test_out_indices_give_each_stage_and_the_last_normed():
    model = tiny(out_indices=(0, 1, -2, -1)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
        last = tiny().eval()(x)[0]
    assert [tuple(o.shape) for o in outs] == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 16, 4, 4),
                                             (1, 32, 2, 2)]
    assert torch.equal(outs[-1], last)
    assert model.out_channels == [8, 16, 16, 32]


def test_other_input_sizes_are_an_error_or_run_as_partitions():
    with pytest.raises(ValueError, match=r"img_size \(64, 64\).*larger_input='windows'"):
        tiny()(torch.randn(1, 3, 96, 96))
    model = tiny(larger_input='windows', out_indices=(0, 3)).eval()
    x = torch.randn(1, 3, 96, 80, dtype=torch.float64)
    model.double()
    with torch.no_grad():
        outs = model(x)
        assert [tuple(o.shape) for o in outs] == [(1, 8, 24, 20), (1, 32, 3, 2)]
        assert_close(reparameterize_model(model)(x), outs, torch.float64)


def trainable(module):
    return all(p.requires_grad for p in module.parameters()) and module.training


def frozen(module):
    return not any(p.requires_grad for p in module.parameters()) and not module.training


@pytest.mark.parametrize('stages', [0, 2, 4])
def test_frozen_stages_stay_frozen_through_training_and_conversion(stages):
    model = tiny(frozen_stages=stages).train()
    for _ in range(2):
        assert frozen(model.stem)
        for i, stage in enumerate(model.stages):
            expected = frozen if i < stages else trainable
            assert expected(stage), i
            if i > 0:
                assert expected(model.downsamples[i - 1]), i
        assert (frozen if stages == 4 else trainable)(model.final_norm)
        model.switch_to_deploy()
        model.train()


def test_norm_eval_keeps_every_bn_in_eval_mode():
    model = tiny(norm_eval=True).train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert model.stages[0][0].repmlp.training


def test_gradient_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for with_cp in (False, True):
        model = tiny(with_cp=with_cp).train()
        model(x)[0].square().sum().backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_a_real_preset_converts_exactly():
    torch.manual_seed(0)
    model = randomize_norm_layers(HierRepMLPNet('t', img_size=224)).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert_close(reparameterize_model(model)(x), model(x), torch.float32)


# ------------------------------------------------------------------------- pretrained
def save_classifier(backbone, path):
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, 32)
    torch.save({'state_dict': state, 'meta': {}}, path)
    return str(path)


def test_a_pretrained_classifier_loads_into_a_larger_input_backbone(tmp_path):
    source = tiny()
    checkpoint = save_classifier(source, tmp_path / 'imagenet.pth')
    init = dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    model = HierRepMLPNet(TINY, img_size=64, larger_input='windows', out_indices=(0, 1, 2, 3),
                          init_cfg=init)
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_pretrained_checkpoint_that_does_not_fit_names_the_keys(tmp_path):
    checkpoint = save_classifier(tiny(), tmp_path / 'imagenet.pth')
    init = dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    for model in (HierRepMLPNet(TINY, img_size=128, init_cfg=init),
                  HierRepMLPNet(TINY, img_size=64, deploy=True, init_cfg=init)):
        with pytest.raises(InputError, match=r'does not fit HierRepMLPNet: .*stages\.0\.0\.'
                           r'repmlp\.fc3'):
            model.init_weights()
