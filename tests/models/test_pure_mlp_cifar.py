"""PureMLPCifar: the paper's CIFAR models (Fig. 3, Table 1), their FLOPs, every ablation config
training one iteration and converting exactly, and the OpenMMLab backbone options."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

from mmrepmlp.analysis import count_flops, count_params
from mmrepmlp.apis import build_model, load_config
from mmrepmlp.models import ConvFC3RepMLPBlock, PureMLPCifar, RepMLPBlock
from mmrepmlp.reparam import deploy_difference, randomize_norm_layers, repmlp_model_convert
from mmrepmlp.utils import find_repo_file

CONFIG_DIR = osp.join(find_repo_file('configs'), 'repmlp_cifar')
CIFAR_CONFIGS = {
    'pure_mlp': 'pure-mlp_1xb128_cifar10.py',
    'wide_convnet': 'wide-convnet_1xb128_cifar10.py',
    'B_wo_local': 'pure-mlp-wo-local_1xb128_cifar10.py',
    'C_wo_global': 'pure-mlp-wo-global_1xb128_cifar10.py',
    'D_fc3_conv9': 'pure-mlp-fc3-conv9_1xb128_cifar10.py',
    'E_repmlp_conv9': 'pure-mlp-repmlp-conv9_1xb128_cifar10.py',
}
INPUT_SHAPE = (3, 32, 32)
TINY_ARCH = dict(channels=(4, 8, 8), mixers_per_stage=1,
                 mixer_cfg=dict(type='RepMLP', partition_size=4, groups=2, local_kernels=(1, 3)))


def config(name):
    return load_config(osp.join(CONFIG_DIR, CIFAR_CONFIGS[name]))


def paper_flops(model):
    """MACs of convs and FCs at batch 1 (the paper's convention, Table 1)."""
    return count_flops(model, INPUT_SHAPE, conv_fc_only=True)


def tiny(**kwargs):
    return PureMLPCifar(arch=TINY_ARCH, img_size=16, **kwargs)


@pytest.fixture(scope='module')
def pure_mlp():
    return build_model(config('pure_mlp'))


def test_deploy_pure_mlp_is_pure_mlp_with_paper_flops(pure_mlp):
    deploy = repmlp_model_convert(pure_mlp)
    convs = [m for m in deploy.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(conv.kernel_size == (1, 1) for conv in convs)
    assert sum(isinstance(m, RepMLPBlock) for m in deploy.modules()) == 6
    assert not any(isinstance(m, _BatchNorm) for m in deploy.modules())
    assert f'{paper_flops(deploy) / 1e6:.1f}' == '52.8'  # Table 1, to the paper's precision


def test_ablation_a_conversion_removes_flops_not_params(pure_mlp):
    """Table 1, A: before conversion FLOPs are far higher, the extra parameters marginal."""
    deploy = repmlp_model_convert(pure_mlp)
    assert paper_flops(pure_mlp) > 2 * paper_flops(deploy)
    assert count_params(pure_mlp) == pytest.approx(count_params(deploy), rel=0.03)


def wide_convnet_params(channels=(32, 64, 128), in_channels=3, num_classes=10):
    """Parameters of our reading of Fig. 3's ConvNet, layer by layer (docs/classification.md)."""
    def conv_bn(cin, cout, k):
        return cin * cout * k * k + 2 * cout

    total = conv_bn(in_channels, channels[0], 1)
    for i, width in enumerate(channels):
        next_width = channels[min(i + 1, len(channels) - 1)]
        total += 2 * conv_bn(width, width, 3) + conv_bn(width, width, 1)
        total += conv_bn(width, next_width, 1)
    return total + channels[-1] * num_classes + num_classes


def test_wide_convnet_flops_match_paper_and_params_our_reading():
    model = build_model(config('wide_convnet'))
    assert f'{paper_flops(model) / 1e6:.1f}' == '65.1'  # Table 1, to the paper's precision
    assert count_params(model) == wide_convnet_params()
    assert not any(isinstance(m, RepMLPBlock) for m in model.modules())
    assert {m.kernel_size for m in model.modules() if isinstance(m, nn.Conv2d)} == {(1, 1),
                                                                                  (3, 3)}


def one_batch(batch_size=4, num_classes=10):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, *INPUT_SHAPE), generator=generator,
                           dtype=torch.uint8)
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(batch_size)]
    return dict(inputs=list(images), data_samples=samples)


@pytest.mark.parametrize('name', sorted(CIFAR_CONFIGS))
def test_config_trains_one_iteration_and_converts_exactly(name):
    cfg = config(name)
    model = build_model(cfg).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.train_step(one_batch(), optim_wrapper)
    assert torch.isfinite(losses['loss'])
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith('backbone.stem') for k in changed)
    assert any(k.startswith('backbone.stages.2') for k in changed)

    randomize_norm_layers(model)
    inputs = torch.randn(2, *INPUT_SHAPE, generator=torch.Generator().manual_seed(1))
    _, max_rel, deploy = deploy_difference(model, inputs)
    assert max_rel < 1e-5
    assert not any(isinstance(m, _BatchNorm) for m in deploy.modules())
    assert deploy.backbone.deploy


def test_ablation_configs_change_only_the_mixer():
    base = config('pure_mlp').model.backbone
    expected = {
        'B_wo_local': dict(base.mixer_cfg, local_kernels=()),
        'C_wo_global': dict(base.mixer_cfg, with_global=False),
        'D_fc3_conv9': dict(base.mixer_cfg, fc3_kernel=9),
        'E_repmlp_conv9': dict(type='Conv', kernel_size=9),
    }
    for name, mixer_cfg in expected.items():
        backbone = config(name).model.backbone
        assert backbone.mixer_cfg == mixer_cfg
        assert {k: v for k, v in backbone.items() if k != 'mixer_cfg'} == \
            {k: v for k, v in base.items() if k != 'mixer_cfg'}


def test_ablation_d_uses_conv9_for_training_and_fc3_at_deploy():
    model = build_model(config('D_fc3_conv9')).backbone
    blocks = [m for m in model.modules() if isinstance(m, ConvFC3RepMLPBlock)]
    assert len(blocks) == 6
    conv = blocks[0].fc3.conv_bn.conv
    assert conv.kernel_size == (9, 9) and conv.padding == (4, 4) and conv.groups == 2
    blocks[0].switch_to_deploy()
    assert blocks[0].fc3.weight.shape == (16 * 64, 16 * 64 // 2)


def test_cifar_recipe_is_the_papers():
    cfg = config('pure_mlp')
    assert cfg.custom_imports == dict(imports=['mmrepmlp'], allow_failed_imports=False)
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.train_dataloader.dataset.type == 'CIFAR10'
    assert cfg.train_dataloader.dataset.data_root == 'data/cifar10'
    crop, flip = cfg.train_dataloader.dataset.pipeline[:2]
    assert (crop.type, crop.crop_size, crop.padding) == ('RandomCrop', 32, 4)  # 40x40 padded
    assert (flip.type, flip.direction) == ('RandomFlip', 'horizontal')
    assert cfg.optim_wrapper.optimizer.lr == 0.2
    assert cfg.param_scheduler.type == 'CosineAnnealingLR'
    assert (cfg.param_scheduler.T_max, cfg.param_scheduler.eta_min) == (100, 0)
    assert cfg.train_cfg.max_epochs == 100


def test_out_indices_return_every_requested_stage():
    model = tiny(out_indices=(0, 1, -1)).eval()
    outs = model(torch.randn(2, 3, 16, 16))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4)]


def test_deploy_flag_builds_the_converted_structure():
    model = randomize_norm_layers(tiny(mixer_cfg=dict(TINY_ARCH['mixer_cfg'], fc3_kernel=5)))
    model.eval()
    inputs = torch.randn(2, 3, 16, 16)
    expected = model(inputs)[0]
    model.switch_to_deploy()
    model.switch_to_deploy()  # idempotent
    deploy = tiny(mixer_cfg=dict(TINY_ARCH['mixer_cfg'], fc3_kernel=5), deploy=True).eval()
    deploy.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(deploy(inputs)[0], expected, rtol=1e-5, atol=1e-5)


def test_frozen_stages_and_norm_eval():
    model = tiny(frozen_stages=0).train()
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    assert all(p.requires_grad for p in model.stages[1].parameters())
    assert not model.stages[0].training and model.stages[1].training

    model = tiny(norm_eval=True).train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert model.stages[1].training


def test_frozen_stages_stay_frozen_after_switch_to_deploy():
    model = tiny(frozen_stages=0).train()
    model.switch_to_deploy()
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    assert all(p.requires_grad for p in model.stages[1].parameters())


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='huge'), 'unknown arch'),
    (dict(arch=dict(channels=(4, 8))), 'needs the keys'),
    (dict(mixer_cfg=dict(type='Attention')), "'RepMLP' or 'Conv'"),
    (dict(img_size=30), 'divisible by 4'),
    (dict(out_indices=(3, )), r'out_indices must be stage indices in \[-3, 2\]'),
    (dict(mixer_cfg=dict(type='RepMLP', partition_size=8, groups=2, local_kernels=(1, 3),
                         fc3_kernel=4)), 'must be odd'),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PureMLPCifar(**kwargs)
