"""ResNet weights of torchvision, MMPretrain and MMSegmentation for ``RepMLPResNet``.

Their ResNet-50s (torchvision's ``resnet50``, MMPretrain's ``ResNet``, MMSegmentation's
``ResNet``/``ResNetV1c``) and ``RepMLPResNet(arch='res50-base')`` are the same network with
other names: ``conv1``/``bn1`` (or the deep stem ``stem.0``..``stem.7``) are the stem,
``layer{i}.{j}.conv{k}``/``bn{k}`` the bottlenecks' conv-BN pairs and ``downsample.0/1``
the projection shortcuts. Renaming is the whole conversion, so e.g. torchvision's ImageNet
weights give the plain ResNet-50 baseline of the paper's segmentation experiment (Sec. 4.4).
"""
import re

import torch

from ..utils.checkpoint import (
    describe_differences,
    read_checkpoint,
    shapes,
    state_dict_differences,
)
from ..utils.errors import InputError
from ..utils.files import check_not_overwriting, check_writable, torch_save
from .backbones import RepMLPResNet

# (pattern, replacement): the first pattern that matches a key renames it.
_KEY_RENAMES = (
    (r'^conv1\.', 'stem.0.conv.'),
    (r'^bn1\.', 'stem.0.bn.'),
    # the deep stem: conv-BN-ReLU three times, as stem.{0,1,2}, {3,4,5}, {6,7,8}
    (r'^stem\.([036])\.', lambda m: f'stem.{int(m[1]) // 3 * 2}.conv.'),
    (r'^stem\.([147])\.', lambda m: f'stem.{int(m[1]) // 3 * 2}.bn.'),
    (r'^layer(\d+)\.(\d+)\.conv(\d)\.', r'stage\1.\2.conv\3.conv.'),
    (r'^layer(\d+)\.(\d+)\.bn(\d)\.', r'stage\1.\2.conv\3.bn.'),
    (r'^layer(\d+)\.(\d+)\.downsample\.0\.', r'stage\1.\2.shortcut.conv.'),
    (r'^layer(\d+)\.(\d+)\.downsample\.1\.', r'stage\1.\2.shortcut.bn.'),
)


def resnet_key_to_repmlp_resnet(key):
    """The ``RepMLPResNet`` key of a torchvision/MMPretrain/MMSegmentation ResNet key."""
    for pattern, replacement in _KEY_RENAMES:
        renamed, count = re.subn(pattern, replacement, key, count=1)
        if count:
            return renamed
    return key


def resnet_state_dict_to_repmlp_resnet(state_dict, prefix=''):
    """Rename a ResNet state dict for ``RepMLPResNet`` (its ``fc`` classifier is dropped).

    Args:
        state_dict (dict): the ResNet's state dict, its keys optionally under ``prefix``
            (MMPretrain checkpoints hold ``backbone.`` keys).
        prefix (str): the prefix to strip first, e.g. ``'backbone.'``. Defaults to ''.

    Returns:
        dict: the state dict of the backbone, in ``RepMLPResNet`` names.
    """
    renamed = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if not key.startswith('fc.'):
            renamed[resnet_key_to_repmlp_resnet(key)] = value
    return renamed


def import_resnet_checkpoint(src, dst):
    """Convert a ResNet-50 checkpoint (torchvision, MMPretrain or MMSegmentation, plain or
    deep stem) into an MMPretrain-style checkpoint of ``RepMLPResNet('res50-base')`` at
    ``dst``: ``backbone.``-prefixed keys, which the configs' ``init_cfg=dict(type='Pretrained',
    prefix='backbone.', ...)`` loads.

    Returns:
        bool: whether the checkpoint has the deep stem (``deep_stem=True`` in the config).

    Raises:
        InputError: the file is unreadable, is not a ResNet-50, or ``dst`` is ``src``.
    """
    check_not_overwriting([dst], [src])
    check_writable(dst)
    state_dict = read_checkpoint(src)[1]
    prefix = 'backbone.' if any(k.startswith('backbone.') for k in state_dict) else ''
    renamed = resnet_state_dict_to_repmlp_resnet(state_dict, prefix)
    deep_stem = 'stem.4.conv.weight' in renamed
    with torch.device('meta'):
        expected = shapes(RepMLPResNet('res50-base', deep_stem=deep_stem).state_dict())
    differences = state_dict_differences(expected, shapes(renamed))
    if any(differences):
        raise InputError(f'{src} is not a ResNet-50 of torchvision, MMPretrain or '
                         f'MMSegmentation: {describe_differences(differences)}; give the '
                         'checkpoint of a ResNet-50 (or ResNetV1c-50)')
    torch_save({'state_dict': {f'backbone.{k}': v for k, v in renamed.items()},
                'meta': dict(source=str(src), deep_stem=deep_stem)}, dst)
    return deep_stem
