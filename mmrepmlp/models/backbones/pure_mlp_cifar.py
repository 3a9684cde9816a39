"""The pure-MLP CIFAR network of RepMLP (paper Sec. 4.1, Fig. 3), its Wide ConvNet counterpart
and the Table 1 ablations, all as options of one backbone."""
import copy

import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...reparam import conv_to_fc, pad_kernel
from ..arguments import (
    check_bool,
    check_int,
    check_int_sequence,
    check_norm_cfg,
    check_out_indices,
    resolve_arch,
)
from ..blocks import RepMLPBlock
from ..layers import ConvBN
from .base import FreezableBackbone


class _PartitionConv(BaseModule):
    """Ablation D's Partition Perceptron: a conv + BN over each partition, in FC3's layout.

    :class:`RepMLPBlock` hands FC3 the partitions flattened to ``(N', C*h*w)`` and expects
    ``(N', O*h*w)`` back; reshaping around the conv lets the block's forward run unchanged.
    It carries :class:`GroupwiseFC`'s shape attributes, from which the block's
    ``switch_to_deploy`` builds the merged FC3.
    """

    def __init__(self, in_channels, out_channels, partition_size, kernel_size, groups,
                 norm_cfg):
        super().__init__()
        self.in_channels = in_channels
        self.partition_size = partition_size
        num_pixels = partition_size[0] * partition_size[1]
        self.in_features, self.out_features = in_channels * num_pixels, out_channels * num_pixels
        self.groups = groups
        self.conv_bn = ConvBN(in_channels, out_channels, kernel_size,
                              padding=kernel_size // 2, groups=groups, norm_cfg=norm_cfg)

    def forward(self, flat_partitions):
        maps = flat_partitions.reshape(-1, self.in_channels, *self.partition_size)
        return self.conv_bn(maps).flatten(1)


@MODELS.register_module()
class ConvFC3RepMLPBlock(RepMLPBlock):
    """RepMLP with FC3 replaced by a ``K x K`` conv + BN on the partition map (Table 1, D).

    The paper uses ``K = 9`` with padding 4 on 8x8 partitions, so the conv sees more than FC3
    does. Global and Local Perceptrons are kept. A conv over a partition is a (degraded) FC,
    so the deploy form is the plain RepMLP deploy form: the conv, its BN and the Local
    Perceptron merge exactly into one FC3 with bias.

    Args:
        fc3_kernel (int): the odd kernel size ``K`` replacing FC3, at least as large as every
            local kernel. Defaults to 9.
        Other arguments: as :class:`RepMLPBlock`.
    """

    def __init__(self, in_channels, out_channels, in_size, partition_size, fc3_kernel=9,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 **kwargs):
        super().__init__(in_channels, out_channels, in_size, partition_size, norm_cfg=norm_cfg,
                         **kwargs)
        if fc3_kernel % 2 == 0 or any(max(k) > fc3_kernel for k in self.local_kernels):
            raise ValueError(f'ConvFC3RepMLPBlock: fc3_kernel={fc3_kernel} must be odd and at '
                             f'least as large as every local kernel {self.local_kernels}')
        if not self.deploy:
            self.fc3 = _PartitionConv(in_channels, out_channels, self.partition_size,
                                      fc3_kernel, self.groups, norm_cfg)
            # The conv's BN (per channel) lives inside ``fc3``; nothing else follows it.
            self.fc3_bn = nn.Identity()

    def get_equivalent_fc1_fc3_params(self):
        """The deploy FC1 and FC3 (see :meth:`RepMLPBlock.get_equivalent_fc1_fc3_params`)."""
        if self.deploy:
            return super().get_equivalent_fc1_fc3_params()
        kernel, bias = self.fc3.conv_bn.fused_weight_bias()
        for branch in self.local_perceptron.values():
            branch_kernel, branch_bias = branch.fused_weight_bias()
            kernel = kernel + pad_kernel(branch_kernel, tuple(kernel.shape[2:]))
            bias = bias + branch_bias
        fc3_weight, fc3_bias = conv_to_fc(kernel, bias, self.partition_size, self.groups)
        return (*self._equivalent_fc1(), fc3_weight, fc3_bias)


def _build_mixer(cfg, channels, size, norm_cfg, deploy):
    """The layer that mixes spatial positions: a RepMLP (or ablation D's) or a plain conv."""
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    if kind == 'RepMLP':
        fc3_kernel = cfg.pop('fc3_kernel', None)
        common = dict(in_channels=channels, out_channels=channels, in_size=size,
                      norm_cfg=norm_cfg, deploy=deploy, **cfg)
        if fc3_kernel is None:
            return RepMLPBlock(**common)
        return ConvFC3RepMLPBlock(fc3_kernel=fc3_kernel, **common)
    if kind == 'Conv':
        kernel_size = cfg.pop('kernel_size')
        return ConvBN(channels, channels, kernel_size, padding=kernel_size // 2,
                      norm_cfg=norm_cfg, deploy=deploy, **cfg)
    raise ValueError(f"PureMLPCifar: mixer_cfg type must be 'RepMLP' or 'Conv', got {kind!r}")


@MODELS.register_module()
class PureMLPCifar(FreezableBackbone):
    """The pure-MLP network of RepMLP's Fig. 3 and its convolutional counterpart.

    No kernel is larger than 1x1 at inference in the pure MLP. Layout, for stages of
    ``channels = (C1, C2, C3)`` at resolutions ``S, S/2, S/4``:

    - stem: FC (1x1 conv) + BN + ReLU from the image channels to ``C1``;
    - stage ``i`` (max-pool 2x2 first, except in stage 1): ``mixers_per_stage`` times
      [mixer -> ReLU -> FC + BN -> ReLU]; every FC keeps ``Ci`` channels except the stage's
      last one, which projects to the next stage's width (the paper's ``FC(32,16)``).

    A *mixer* is the layer that mixes spatial positions: a RepMLP (``g = 2``, ``h = w = 8``
    in the paper) for the pure MLP, a 3x3 conv + BN for the Wide ConvNet.
    The Table 1 ablations are ``mixer_cfg`` options: B ``local_kernels=()``, C
    ``with_global=False``, D ``fc3_kernel=9``, E ``dict(type='Conv', kernel_size=9)``.

    Args:
        arch (str | dict): ``'pure_mlp'`` (channels 16, 32, 64; RepMLPs) or ``'wide_convnet'``
            (channels 32, 64, 128; 3x3 convs), or a dict with keys ``channels``,
            ``mixers_per_stage`` and ``mixer_cfg``. Defaults to 'pure_mlp'.
        mixer_cfg (dict, optional): replaces the arch's mixer. ``type='RepMLP'`` takes the
            :class:`RepMLPBlock` arguments ``partition_size``, ``groups``, ``local_kernels``,
            ``with_global``, ``fc1_fc2_reduction``, ``larger_input`` and ``fc3_kernel`` (None
            keeps FC3; an int is ablation D); ``type='Conv'`` takes ``kernel_size`` and
            ``groups``. Defaults to None (the arch's).
        in_channels (int): image channels. Defaults to 3.
        img_size (int): input height and width; RepMLPs are built for this size.
            Defaults to 32.
        out_indices (Sequence[int]): stages whose outputs are returned. Defaults to ``(2, )``.
        frozen_stages (int): freeze the stem and stages up to this index; -1 freezes nothing.
            Defaults to -1.
        norm_eval (bool): keep the norm layers in eval mode while training. Defaults to False.
        norm_cfg (dict): config of the norm layers. Defaults to ``dict(type='BN')``.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict | list[dict], optional): initialization config. Defaults to None.
    """

    arch_settings = {
        'pure_mlp': dict(
            channels=(16, 32, 64),
            mixers_per_stage=2,
            mixer_cfg=dict(type='RepMLP', partition_size=8, groups=2,
                           local_kernels=(1, 3, 5, 7))),
        'wide_convnet': dict(
            channels=(32, 64, 128),
            mixers_per_stage=2,
            mixer_cfg=dict(type='Conv', kernel_size=3)),
    }

    def __init__(self,
                 arch='pure_mlp',
                 mixer_cfg=None,
                 in_channels=3,
                 img_size=32,
                 out_indices=(2, ),
                 frozen_stages=-1,
                 norm_eval=False,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        owner = type(self).__name__
        arch = resolve_arch(arch, self.arch_settings, owner,
                            required=('channels', 'mixers_per_stage', 'mixer_cfg'))
        channels = check_int_sequence(arch['channels'], 'arch channels', owner)
        self.mixer_cfg = copy.deepcopy(mixer_cfg or arch['mixer_cfg'])
        self.out_indices = check_out_indices(out_indices, len(channels), owner)
        in_channels = check_int(in_channels, 'in_channels', owner)
        img_size = check_int(img_size, 'img_size', owner)
        if img_size % 2**(len(channels) - 1):
            raise ValueError(f'{owner}: img_size={img_size} must be divisible by '
                             f'{2**(len(channels) - 1)} (one 2x max-pool between stages)')
        self.frozen_stages = check_int(frozen_stages, 'frozen_stages', owner, minimum=-1)
        self.norm_eval = check_bool(norm_eval, 'norm_eval', owner)
        norm_cfg = check_norm_cfg(norm_cfg, owner)
        self.deploy = deploy = check_bool(deploy, 'deploy', owner)

        self.stem = nn.Sequential(
            ConvBN(in_channels, channels[0], 1, norm_cfg=norm_cfg, deploy=deploy),
            nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()
        for i, width in enumerate(channels):
            next_width = channels[min(i + 1, len(channels) - 1)]
            layers = [nn.MaxPool2d(2)] if i else []
            for j in range(arch['mixers_per_stage']):
                fc_out = next_width if j == arch['mixers_per_stage'] - 1 else width
                layers += [
                    _build_mixer(self.mixer_cfg, width, img_size // 2**i, norm_cfg, deploy),
                    nn.ReLU(inplace=True),
                    ConvBN(width, fc_out, 1, norm_cfg=norm_cfg, deploy=deploy),
                    nn.ReLU(inplace=True),
                ]
            self.stages.append(nn.Sequential(*layers))

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def frozen_modules(self):
        if self.frozen_stages < 0:
            return []
        return [self.stem, *self.stages[:self.frozen_stages + 1]]
