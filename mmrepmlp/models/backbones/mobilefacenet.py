"""MobileFaceNet (Chen et al., 2018, "MobileFaceNets"), built from :class:`ConvBN` layers."""
import math

import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..arguments import (
    check_bool,
    check_int,
    check_norm_cfg,
    check_out_indices,
    check_pair,
    resolve_arch,
)
from ..layers import ConvBN
from .base import FreezableBackbone
from .repmlp_resnet import DEFAULT_INIT_CFG

ARCH_KEYS = ('stem_channels', 'stem_groups', 'stage_channels', 'num_blocks', 'down_expansions',
             'expansions', 'out_channels')
PER_STAGE_KEYS = ('stage_channels', 'num_blocks', 'down_expansions', 'expansions')
NUM_STAGES = 3


def _conv_bn_prelu(in_channels, out_channels, kernel_size, stride=1, groups=1, *, norm_cfg,
                   deploy):
    return nn.Sequential(
        ConvBN(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
               groups=groups, norm_cfg=norm_cfg, deploy=deploy),
        nn.PReLU(out_channels))


class DepthwiseBottleneck(BaseModule):
    """MobileFaceNet's bottleneck: 1x1 expand -> 3x3 depthwise (stride) -> linear 1x1 project.

    The expansion and the depthwise conv end in PReLU, the projection in BN only; the input is
    added when the shape is kept.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        mid_channels (int): channels after the expansion (the depthwise conv's width).
        stride (int): stride of the depthwise conv. Defaults to 1.
        norm_cfg (dict): config of the norm layers. Defaults to ``dict(type='BN')``.
        deploy (bool): build the deploy form directly. Defaults to False.
    """

    def __init__(self, in_channels, out_channels, mid_channels, stride=1,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 deploy=False):
        super().__init__()
        self.with_residual = stride == 1 and in_channels == out_channels
        self.expand = _conv_bn_prelu(in_channels, mid_channels, 1, norm_cfg=norm_cfg,
                                     deploy=deploy)
        self.depthwise = _conv_bn_prelu(mid_channels, mid_channels, 3, stride=stride,
                                        groups=mid_channels, norm_cfg=norm_cfg, deploy=deploy)
        self.project = ConvBN(mid_channels, out_channels, 1, norm_cfg=norm_cfg, deploy=deploy)

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.with_residual else out


@MODELS.register_module()
class MobileFaceNet(FreezableBackbone):
    """MobileFaceNet's trunk (Chen et al., 2018): its layers up to the 1x1 conv to 512 channels.

    Layout (sizes for 112x112 inputs):

    - stem: 3x3 stride-2 conv-BN-PReLU to ``stem_channels`` (56x56), then a 3x3 depthwise
      conv-BN-PReLU with ``stem_groups`` groups;
    - stages 1-3 (28, 14, 7): a stride-2 depthwise bottleneck whose expansion has
      ``down_expansions[i]`` channels, then ``num_blocks[i]`` residual bottlenecks expanding
      to ``expansions[i]``; outputs ``stage_channels[i]``;
    - ``conv_out``: 1x1 conv-BN-PReLU to ``out_channels`` (512).

    The output layer (global depthwise conv, FC and BN1d to the embedding) is the
    :class:`GDCEmbeddingNeck`, so that MobileFaceNet and ResNet-style backbones both give a
    feature map and differ only in their neck. Its ``in_size`` must be this backbone's
    :attr:`out_size`: 7 at 112x112, 6 at 96x96. Every conv-BN is a :class:`ConvBN`, so the
    deploy form has no BN left.

    Presets:

    - ``'mobilefacenet'``: the paper's network (widths 64/128, blocks 1-5-7-3 counting each
      stage's stride-2 bottleneck, expansions 2 and 4); with a 128-d ``GDCEmbeddingNeck``
      at 112x112: 1.00M parameters (BN and PReLU included) and 221M MACs, the published
      0.99M and 221M MAdds;
    - ``'mbf'``: the widely used double-width variant (stem 128, stages 128/256/256, same
      expansion widths, so lower expansion ratios), usually with a 512-d embedding.

    A custom ``arch`` is a dict with the keys ``stem_channels``, ``stem_groups``,
    ``out_channels`` (ints) and ``stage_channels``, ``num_blocks``, ``down_expansions``,
    ``expansions`` (one int per stage).

    Args:
        arch (str | dict): a preset name or a custom arch dict. Defaults to 'mbf'.
        img_size (int | tuple[int, int]): input size (H, W); sets :attr:`out_size`, the last
            map's size, and inputs of another size are rejected. Defaults to 112.
        in_channels (int): image channels. Defaults to 3.
        out_indices (Sequence[int]): outputs to return: 0-2 the stages, 3 ``conv_out``
            (negative counts from the end). Defaults to ``(3, )``.
        frozen_stages (int): freeze the stem (0) and the first ``frozen_stages`` of the four
            outputs' layers (-1: nothing). Defaults to -1.
        norm_eval (bool): keep every BN in eval mode while training. Defaults to False.
        norm_cfg (dict): config of the norm layers. Defaults to ``dict(type='BN')``.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict | list[dict], optional): initialization config. Defaults to Kaiming for
            convs and 1 for norm weights.
    """

    arch_settings = {
        'mobilefacenet': dict(stem_channels=64, stem_groups=64, stage_channels=(64, 128, 128),
                              num_blocks=(4, 6, 2), down_expansions=(128, 256, 512),
                              expansions=(128, 256, 256), out_channels=512),
        'mbf': dict(stem_channels=128, stem_groups=64, stage_channels=(128, 256, 256),
                    num_blocks=(4, 6, 2), down_expansions=(128, 256, 512),
                    expansions=(128, 256, 256), out_channels=512),
    }

    def __init__(self,
                 arch='mbf',
                 img_size=112,
                 in_channels=3,
                 out_indices=(3, ),
                 frozen_stages=-1,
                 norm_eval=False,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg or DEFAULT_INIT_CFG)
        owner = type(self).__name__
        arch = self._resolve_arch(arch)
        self.img_size = check_pair(img_size, 'img_size', owner)
        self.out_size = tuple(_downsampled(s) for s in self.img_size)
        in_channels = check_int(in_channels, 'in_channels', owner)
        num_outputs = NUM_STAGES + 1
        self.out_indices = check_out_indices(out_indices, num_outputs, owner)
        self.frozen_stages = check_int(frozen_stages, 'frozen_stages', owner, minimum=-1,
                                       maximum=num_outputs)
        self.norm_eval = check_bool(norm_eval, 'norm_eval', owner)
        self.deploy = deploy = check_bool(deploy, 'deploy', owner)
        layer_args = dict(norm_cfg=check_norm_cfg(norm_cfg, owner), deploy=deploy)

        width = arch['stem_channels']
        self.stem = nn.Sequential(
            _conv_bn_prelu(in_channels, width, 3, stride=2, **layer_args),
            _conv_bn_prelu(width, width, 3, groups=arch['stem_groups'], **layer_args))
        self.stages = nn.ModuleList()
        for out_width, num_blocks, down_mid, mid in zip(*(arch[k] for k in PER_STAGE_KEYS)):
            blocks = [DepthwiseBottleneck(width, out_width, down_mid, stride=2, **layer_args)]
            blocks += [DepthwiseBottleneck(out_width, out_width, mid, **layer_args)
                       for _ in range(num_blocks)]
            self.stages.append(nn.Sequential(*blocks))
            width = out_width
        self.conv_out = _conv_bn_prelu(width, arch['out_channels'], 1, **layer_args)
        self.out_channels = [*arch['stage_channels'], arch['out_channels']]
        self._freeze_stages()

    def _resolve_arch(self, arch):
        arch = resolve_arch(arch, self.arch_settings, 'MobileFaceNet', required=ARCH_KEYS)
        if any(len(arch[key]) != NUM_STAGES for key in PER_STAGE_KEYS):
            raise ValueError(f'MobileFaceNet: arch {PER_STAGE_KEYS} need one entry for each of '
                             f'the {NUM_STAGES} stages')
        return arch

    def output_layers(self):
        """The layers whose outputs ``out_indices`` selects: the stages, then ``conv_out``."""
        return [*self.stages, self.conv_out]

    def forward(self, x):
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f'MobileFaceNet was built for img_size {self.img_size} (its neck expects '
                f'{self.out_size} maps) but got inputs {tuple(x.shape)}; set img_size (in a '
                'config: model.backbone.img_size, and neck.in_size to match) or resize them')
        x = self.stem(x)
        outs = []
        for i, layer in enumerate(self.output_layers()):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        return [self.stem, *self.output_layers()[:self.frozen_stages]]


def _downsampled(size):
    """The size after the stem conv and the stages' stride-2 blocks (3x3, padding 1)."""
    for _ in range(NUM_STAGES + 1):
        size = math.ceil(size / 2)
    return size
