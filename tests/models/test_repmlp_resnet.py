"""RepMLPResNet: the paper's presets, exact re-parameterization, the OpenMMLab backbone options,
and a few training iterations of the paper's recipe through tools/train.py."""
import os
import os.path as osp
import subprocess
import sys

import mmpretrain
import numpy as np
import pytest
import torch
from mmpretrain.apis import ImageClassificationInferencer, ModelHub
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.registry import MODELS
from PIL import Image
from torch.nn.modules.batchnorm import _BatchNorm

from mmrepmlp.analysis import count_params
from mmrepmlp.models import RepMLPBlock, RepMLPBottleneck, RepMLPLightBlock, RepMLPResNet
from mmrepmlp.utils.checkpoint import safe_load
from mmrepmlp.utils.errors import InputError

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HEAD_PARAMS = 2048 * 1000 + 1000  # the 1000-class linear head, included in the counts

# Computed from the official v1 code (docs/classification.md): preset -> (input, params train,
# params deploy) in millions.
PAPER_PARAMS = {
    'res50-base': (224, 25.56, 25.53),
    'res50-light-g4': (224, 87.04, 86.14),
    'res50-light-g8': (224, 58.35, 57.87),
    'res50-g8g8': (224, 41.07, 40.87),
    'res50-g8g8-320': (320, 72.45, 72.02),
    'res50-g4g8-320': (320, 87.94, 87.38),
    'res50-g8g16-320': (320, 59.54, 59.22),
}

# Half-width inputs: every RepMLP keeps several partitions (so its Global Perceptron exists)
# while the forward pass costs half as much.
REDUCED_SIZE = {224: (224, 112), 320: (320, 160)}

TINY_ARCH = dict(num_blocks=(1, 2, 2, 1), widths=(16, 32, 64, 128),
                 block_type=('base', 'bottleneck', 'light', 'base'), r=2, groups=2,
                 partition=4, local_kernels=(1, 3))


def tiny(**kwargs):
    return RepMLPResNet(arch=TINY_ARCH, img_size=64, **kwargs)


def classifier(arch, img_size, deploy=False, num_classes=1000):
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='RepMLPResNet', arch=arch, img_size=img_size, deploy=deploy),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=2048)))


def randomize_norms(model):
    """Non-trivial BN statistics and affine parameters, so that fusing them is exercised."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)


# ----------------------------------------------------------------------------- presets
@pytest.mark.parametrize('arch', sorted(PAPER_PARAMS))
def test_preset_params_equal_the_paper_table(arch):
    img_size, train_m, deploy_m = PAPER_PARAMS[arch]
    with torch.device('meta'):  # shapes only: no memory, no init
        train = RepMLPResNet(arch, img_size=img_size)
        deploy = RepMLPResNet(arch, img_size=img_size, deploy=True)
    assert round((count_params(train) + HEAD_PARAMS) / 1e6, 2) == train_m
    assert round((count_params(deploy) + HEAD_PARAMS) / 1e6, 2) == deploy_m


@pytest.mark.parametrize('arch', sorted(PAPER_PARAMS))
def test_preset_deploy_logits_equal_train_logits(arch):
    img_size = REDUCED_SIZE[PAPER_PARAMS[arch][0]]
    torch.manual_seed(0)
    model = classifier(arch, img_size, num_classes=10).eval()
    randomize_norms(model)
    inputs = torch.randn(1, 3, *img_size)
    with torch.no_grad():
        expected = model(inputs, mode='tensor')
        model.backbone.switch_to_deploy()
        converted = model(inputs, mode='tensor')
        with torch.device('meta'):  # the converted weights are its only values
            deployed = classifier(arch, img_size, deploy=True, num_classes=10)
        deployed.load_state_dict(model.state_dict(), strict=True, assign=True)
        actual = deployed.eval()(inputs, mode='tensor')

    scale = expected.abs().max()
    assert (converted - expected).abs().max() <= 1e-5 * scale
    assert torch.equal(actual, converted)
    # Nothing trainable-only is left: no BN, no Local Perceptron.
    assert not any(isinstance(m, _BatchNorm) for m in deployed.backbone.modules())


def test_presets_place_repmlp_in_the_stride1_blocks_of_c3_and_c4():
    with torch.device('meta'):
        model = RepMLPResNet('res50-g8g8')
    repmlp_blocks = [(i, j) for i, name in enumerate(model.stage_names, 1)
                     for j, block in enumerate(getattr(model, name))
                     if isinstance(block, RepMLPBottleneck)]
    assert repmlp_blocks == [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3), (3, 4), (3, 5)]
    c3, c4 = model.stage2[1].repmlp, model.stage3[1].repmlp
    assert (c3.in_channels, c3.in_size, c3.partition_size, c3.groups) == (64, (28, 28), (7, 7), 8)
    assert (c4.in_channels, c4.in_size, c4.partition_size, c4.groups) == (64, (14, 14), (7, 7), 8)
    assert c3.local_kernels == ((1, 1), (3, 3), (5, 5))


ZOO_NAMES = sorted(
    f'repmlp-res50-{model}_{form}_in1k{suffix}'
    for model, suffix in [('base', ''), ('base', '-320px'), ('light-g4', ''), ('light-g8', ''),
                          ('g8g8', ''), ('g8g8', '-320px'), ('g4g8', '-320px'),
                          ('g8g16', '-320px')]
    for form in ('8xb32', 'deploy'))


def test_model_zoo_lists_every_preset_with_fitting_metadata():
    assert mmpretrain.list_models('repmlp-res50*') == ZOO_NAMES
    archs = set()
    for name in ZOO_NAMES:
        info = ModelHub.get(name)
        backbone = info.config.model.backbone
        assert backbone.get('deploy', False) == ('_deploy_' in name)
        assert info.config.custom_imports.imports == ['mmrepmlp']
        with torch.device('meta'):
            model = MODELS.build(info.config.model)
        assert count_params(model) == info.metadata.parameters, name
        archs.add(backbone.arch)
    # the face and segmentation presets belong to those tasks' configs
    assert archs == {arch for arch in RepMLPResNet.arch_settings
                     if not arch.startswith('face-') and not arch.endswith('-seg')}


def test_get_model_and_the_inferencer_classify_an_image(tmp_path):
    name = 'repmlp-res50-g8g8_deploy_in1k'  # no weights are published: save random ones
    checkpoint = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': mmpretrain.get_model(name).state_dict()}, checkpoint)
    image = str(tmp_path / 'image.jpg')
    pixels = np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)

    result = mmpretrain.inference_model(mmpretrain.get_model(name, pretrained=checkpoint),
                                        image)
    inferred = ImageClassificationInferencer(name, pretrained=checkpoint)(image)[0]

    assert result['pred_class'] == IMAGENET_CATEGORIES[result['pred_label']]
    assert result['pred_scores'].shape == (1000, )
    assert abs(float(result['pred_scores'].sum()) - 1) < 1e-4
    assert inferred['pred_label'] == result['pred_label']


# ----------------------------------------------------------------------------- custom arch
def test_tiny_custom_arch_outputs_every_stage():
    model = tiny(out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.rand(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4),
                                              (2, 128, 2, 2)]
    assert isinstance(model.stage2[1], RepMLPBottleneck)
    assert isinstance(model.stage3[1], RepMLPLightBlock)


def test_tiny_custom_arch_switch_to_deploy_is_exact_and_idempotent():
    model = tiny().eval()
    randomize_norms(model)
    inputs = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(inputs)[0]
        model.switch_to_deploy()
        once = model(inputs)[0]
        model.switch_to_deploy()
        twice = model(inputs)[0]
    torch.testing.assert_close(once, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(once, twice)
    assert all(m.deploy for m in model.modules() if isinstance(m, RepMLPBlock))


def test_deep_stem_and_default_init():
    model = tiny(deep_stem=True)
    model.init_weights()
    convs = [m for m in model.stem.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 3
    assert [c.out_channels for c in convs] == [2, 2, 4]  # stem_channels = widths[0] // 4
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in _norms(model))
    model.eval()
    inputs = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(inputs)[0]
        model.switch_to_deploy()
        torch.testing.assert_close(model(inputs)[0], expected, rtol=1e-5, atol=1e-5)


def test_repmlp_cfg_reaches_every_repmlp_and_keeps_the_function():
    torch.manual_seed(0)
    default = tiny().eval()
    windows = tiny(repmlp_cfg=dict(larger_input='windows')).eval()
    windows.load_state_dict(default.state_dict())
    blocks = [m for m in windows.modules() if isinstance(m, RepMLPBlock)]
    assert len(blocks) == 2 and all(b.larger_input == 'windows' for b in blocks)
    inputs = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(windows(inputs)[0], default(inputs)[0])


def test_out_indices_accept_negative_indices():
    model = tiny(out_indices=(-1, 1)).eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 8, 8), (1, 128, 2, 2)]


def test_strides_and_dilations_keep_the_size_and_repmlp_follows():
    arch = dict(TINY_ARCH, block_type=('base', 'bottleneck', 'bottleneck', 'base'))
    model = RepMLPResNet(arch=arch, img_size=64, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                         out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 16), (8, 8), (8, 8), (8, 8)]
    assert model.stage3[1].repmlp.in_size == (8, 8)
    assert model.stage3[1].conv2.conv.dilation == (2, 2)
    assert model.stage3[1].conv4.conv.dilation == (2, 2)
    assert model.stage4[0].conv2.conv.dilation == (4, 4)
    assert model.stage2[1].conv2.conv.dilation == (1, 1)


def test_rectangular_img_size_sets_rectangular_repmlp_sizes():
    model = RepMLPResNet(arch=TINY_ARCH, img_size=(64, 128))
    assert model.stage2[1].repmlp.in_size == (8, 16)
    assert tuple(model.eval()(torch.rand(1, 3, 64, 128))[0].shape) == (1, 128, 2, 4)


def test_per_stage_settings_and_chosen_repmlp_blocks():
    arch = dict(TINY_ARCH, block_type=('bottleneck', 'bottleneck', 'light', 'base'),
                groups=(1, 2, 4, 1), partition=[4, (4, 2), 4, 2],
                local_kernels=[(1, ), ((1, 1), (3, 1)), (3, ), (1, )],
                repmlp_blocks=[(0, ), None, (1, ), ()])
    model = RepMLPResNet(arch=arch, img_size=64)
    assert isinstance(model.stage1[0], RepMLPBottleneck)  # stride 1: allowed, projection
    assert model.stage1[0].repmlp.local_kernels == ((1, 1), )
    assert model.stage2[1].repmlp.partition_size == (4, 2)
    assert model.stage2[1].repmlp.local_kernels == ((1, 1), (3, 1))
    assert model.stage3[1].repmlp.groups == 4
    assert model.stage3[1].repmlp.local_kernels == ((3, 3), )
    assert tuple(model.eval()(torch.rand(1, 3, 64, 64))[0].shape) == (1, 128, 2, 2)


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='res50-g2g2'), 'unknown arch'),
    (dict(arch=dict(TINY_ARCH, width=(1, 2))), 'unknown keys'),
    (dict(arch=dict(TINY_ARCH, groups=(2, 2))), 'one entry per stage'),
    (dict(arch=dict(TINY_ARCH, block_type='conv')), 'block_type'),
    (dict(arch=dict(TINY_ARCH, repmlp_blocks=[(), (0, ), None, ()])), 'cannot downsample'),
    (dict(arch=dict(TINY_ARCH, repmlp_blocks=[(), (5, ), None, ()])), 'not block indices'),
    (dict(arch=dict(TINY_ARCH, partition=8)), 'stage 3 block 1'),
    (dict(arch=dict(TINY_ARCH, groups=3)), 'divisible by groups'),
    (dict(strides=(1, 2, 2)), 'strides'),
    (dict(out_indices=(4, )), 'out_indices'),
])
def test_bad_settings_are_refused_with_a_clear_error(kwargs, message):
    kwargs = {'arch': TINY_ARCH, 'img_size': 64, **kwargs}
    with pytest.raises(ValueError, match=message):
        RepMLPResNet(**kwargs)


def test_wrong_input_size_names_img_size():
    with pytest.raises(ValueError, match='img_size'):
        tiny()(torch.rand(1, 3, 96, 96))


def test_larger_input_is_an_input_error_naming_windows():
    with pytest.raises(InputError, match=r"larger than img_size.*larger_input='windows'"):
        tiny()(torch.rand(1, 3, 64, 80))


@pytest.mark.parametrize('deploy', [False, True])
def test_smaller_input_is_padded_to_img_size_and_cropped_back(deploy):
    # e.g. the last row of a sliding window over an image smaller than the crop
    torch.manual_seed(0)
    model = tiny(out_indices=(0, 1, 2, 3)).eval()
    if deploy:
        model.switch_to_deploy()
    inputs = torch.rand(2, 3, 50, 64)
    with torch.no_grad():
        outs = model(inputs)
        padded = model(torch.nn.functional.pad(inputs, (0, 0, 0, 14)))
    # as a plain ResNet: every stride rounds up
    assert [tuple(o.shape[2:]) for o in outs] == [(13, 16), (7, 8), (4, 4), (2, 2)]
    for out, full in zip(outs, padded):
        torch.testing.assert_close(out, full[..., :out.shape[2], :out.shape[3]])


def test_with_cp_computes_the_same_values_and_gradients():
    torch.manual_seed(0)
    plain = tiny()
    checkpointed = tiny(with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    inputs = torch.rand(2, 3, 64, 64, requires_grad=True)
    for model in (plain, checkpointed):
        model(inputs)[0].sum().backward()
    torch.testing.assert_close(checkpointed(inputs)[0], plain(inputs)[0])
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


# ----------------------------------------------------------------------------- freezing
def _norms(module):
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def test_frozen_stages_stop_gradients_and_keep_their_bn_in_eval():
    model = tiny(frozen_stages=2)
    model.train()
    for frozen in (model.stem, model.stage1, model.stage2):
        assert all(not p.requires_grad for p in frozen.parameters())
        assert all(not bn.training for bn in _norms(frozen))
    for free in (model.stage3, model.stage4):
        assert all(p.requires_grad for p in free.parameters())
        assert all(bn.training for bn in _norms(free))


def test_frozen_stages_stay_frozen_after_switch_to_deploy():
    model = tiny(frozen_stages=1)
    model.switch_to_deploy()
    assert all(not p.requires_grad for p in model.stage1.parameters())
    assert all(p.requires_grad for p in model.stage2.parameters())


def test_frozen_stem_only():
    model = tiny(frozen_stages=0)
    model.train()
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert all(p.requires_grad for p in model.stage1.parameters())


def test_norm_eval_keeps_every_bn_in_eval_but_trainable():
    model = tiny(norm_eval=True)
    model.train()
    norms = _norms(model)
    assert norms and all(not bn.training for bn in norms)
    assert all(p.requires_grad for p in model.parameters())
    assert model.stage2[1].conv1.conv.training  # only BN is switched


# ----------------------------------------------------------------------------- training
def make_imagenet_folder(root, classes, images_per_class=4, size=40):
    """``root/{train,val}/<class>/<i>.jpg`` with random images (MMPretrain's ImageNet layout)."""
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        for name in classes:
            os.makedirs(osp.join(root, split, name))
            for i in range(images_per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(osp.join(root, split, name, f'{i}.jpg'))
    return root


def test_paper_recipe_trains_a_tiny_model_through_tools_train(tmp_path):
    """The real g8/8 config (AutoAugment, mixup, SGD, cosine) with a tiny arch, one epoch."""
    classes = ['n01', 'n02', 'n03']
    data = make_imagenet_folder(str(tmp_path / 'imagenet'), classes)
    # c3 28x28 and c4 14x14 at 224; _delete_ replaces the base's preset name.
    tiny_arch = dict(TINY_ARCH, partition=7, local_kernels=(1, 3, 5), _delete_=True)
    base = osp.join(REPO_ROOT, 'configs', 'repmlp_resnet', 'repmlp-res50-g8g8_8xb32_in1k.py')
    dataset = dict(data_root=data, metainfo=dict(classes=classes))
    config = tmp_path / 'tiny_recipe.py'
    config.write_text(
        f'_base_ = [{base!r}]\n'
        f'model = dict(backbone=dict(arch={tiny_arch!r}),\n'
        '             head=dict(num_classes=3, in_channels=128, topk=(1, )))\n'
        'data_preprocessor = dict(num_classes=3)\n'
        f'train_dataloader = dict(batch_size=4, num_workers=0, dataset={dataset!r})\n'
        f'val_dataloader = dict(batch_size=4, num_workers=0, dataset={dataset!r})\n'
        'test_dataloader = val_dataloader\n'
        'val_evaluator = dict(topk=(1, ))\n'
        'test_evaluator = val_evaluator\n'
        'train_cfg = dict(max_epochs=1)\n'
        'default_hooks = dict(logger=dict(interval=1))\n')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), str(config), '--work-dir',
         str(tmp_path / 'work')], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert 'Epoch(train) [1][3/3]' in log  # 12 images, batches of 4
    assert 'accuracy/top1' in log
    checkpoint = safe_load(str(tmp_path / 'work' / 'epoch_1.pth'), map_location='cpu')
    assert 'backbone.stage2.1.repmlp.fc3.weight' in checkpoint['state_dict']
