"""Residual blocks of RepMLP-ResNet (paper Sec. 3.5 and Fig. 6).

Every conv+BN is a :class:`ConvBN` and the RepMLP is a :class:`RepMLPBlock`, so each block has
an exact deploy form. Submodule names follow the official v1 checkpoints once their block
prefix is dropped (``btnk_conv2`` -> ``conv2``, ``light_repmlp`` -> ``repmlp``), which keeps
the importer a plain renaming.
"""
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...reparam import reparameterize_children
from ..layers import ConvBN
from .repmlp_block import RepMLPBlock


class _ResidualBlock(BaseModule):
    """``relu(residual(x) + shortcut(x))``, with the shortcut a 1x1 ConvBN when the shape changes.

    Subclasses build their layers and implement :meth:`residual`.
    """

    def __init__(self, in_channels, out_channels, stride, norm_cfg, with_cp, deploy, init_cfg):
        super().__init__(init_cfg)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.with_cp = with_cp
        self.deploy = deploy
        self.norm_cfg = norm_cfg or dict(type='BN')
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ConvBN(in_channels, out_channels, 1, stride=stride,
                                   norm_cfg=self.norm_cfg, deploy=deploy)
        else:
            self.shortcut = nn.Identity()

    def residual(self, x):
        raise NotImplementedError

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self.residual, x, use_reentrant=False)
        else:
            out = self.residual(x)
        # In place: the branch ends in a conv or norm, which does not keep its output for
        # backward, so adding the shortcut into it spares a full-size tensor per block.
        out += self.shortcut(x)
        return out.relu_()

    def switch_to_deploy(self):
        """Fuse every conv-BN and merge the RepMLP into its FCs (idempotent)."""
        reparameterize_children(self)
        self.deploy = True


@MODELS.register_module()
class ResNetBottleneck(_ResidualBlock):
    """The bottleneck of ResNet-50: 1x1 reduce -> 3x3 (stride, dilation) -> 1x1 expand.

    The stride sits on the 3x3 conv (as in torchvision and the official RepMLP-ResNet).

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        expansion (int): ratio of ``out_channels`` to the 3x3 conv's channels. Defaults to 4.
        stride (int): stride of the 3x3 conv and the shortcut. Defaults to 1.
        dilation (int): dilation of the 3x3 conv. Defaults to 1.
        norm_cfg (dict, optional): config of the norm layers. Defaults to ``dict(type='BN')``.
        with_cp (bool): trade compute for memory with gradient checkpointing of the residual
            branch. Defaults to False.
        deploy (bool): build the fused deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 expansion=4,
                 stride=1,
                 dilation=1,
                 norm_cfg=None,
                 with_cp=False,
                 deploy=False,
                 init_cfg=None):
        super().__init__(in_channels, out_channels, stride, norm_cfg, with_cp, deploy, init_cfg)
        mid_channels = _divide(out_channels, expansion, 'out_channels', 'expansion')
        conv_args = dict(norm_cfg=self.norm_cfg, deploy=deploy)
        self.conv1 = ConvBN(in_channels, mid_channels, 1, **conv_args)
        self.conv2 = ConvBN(mid_channels, mid_channels, 3, stride=stride, padding=dilation,
                            dilation=dilation, **conv_args)
        self.conv3 = ConvBN(mid_channels, out_channels, 1, **conv_args)

    def residual(self, x):
        out = F.relu(self.conv1(x), inplace=True)
        out = F.relu(self.conv2(out), inplace=True)
        return self.conv3(out)


@MODELS.register_module()
class RepMLPBottleneck(_ResidualBlock):
    """RepMLP Bottleneck: 1x1 reduce -> 3x3 reduce r times -> RepMLP -> 3x3 expand -> 1x1 expand.

    A ReLU follows every layer but the last; the RepMLP works on ``out_channels / expansion / r``
    channels at the block's (unchanged) resolution.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        repmlp_cfg (dict): arguments of the inner :class:`RepMLPBlock` other than its channels,
            ``norm_cfg`` and ``deploy``; ``in_size`` and ``partition_size`` are required.
        r (int): channel reduction of the first 3x3 conv (and expansion of the second).
            Defaults to 2.
        expansion (int): ratio of ``out_channels`` to the 3x3 convs' wide side. Defaults to 4.
        dilation (int): dilation of the two 3x3 convs. Defaults to 1.
        norm_cfg (dict, optional): config of the norm layers. Defaults to ``dict(type='BN')``.
        with_cp (bool): gradient checkpointing of the residual branch. Defaults to False.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 repmlp_cfg,
                 r=2,
                 expansion=4,
                 dilation=1,
                 norm_cfg=None,
                 with_cp=False,
                 deploy=False,
                 init_cfg=None):
        super().__init__(in_channels, out_channels, 1, norm_cfg, with_cp, deploy, init_cfg)
        mid_channels = _divide(out_channels, expansion, 'out_channels', 'expansion')
        repmlp_channels = _divide(mid_channels, r, 'out_channels / expansion', 'r')
        conv_args = dict(norm_cfg=self.norm_cfg, deploy=deploy)
        conv3x3_args = dict(padding=dilation, dilation=dilation, **conv_args)
        self.conv1 = ConvBN(in_channels, mid_channels, 1, **conv_args)
        self.conv2 = ConvBN(mid_channels, repmlp_channels, 3, **conv3x3_args)
        self.repmlp = RepMLPBlock(repmlp_channels, repmlp_channels, **repmlp_cfg, **conv_args)
        self.conv4 = ConvBN(repmlp_channels, mid_channels, 3, **conv3x3_args)
        self.conv5 = ConvBN(mid_channels, out_channels, 1, **conv_args)

    def residual(self, x):
        out = F.relu(self.conv1(x), inplace=True)
        out = F.relu(self.conv2(out), inplace=True)
        out = F.relu(self.repmlp(out), inplace=True)
        out = F.relu(self.conv4(out), inplace=True)
        return self.conv5(out)


@MODELS.register_module()
class RepMLPLightBlock(_ResidualBlock):
    """RepMLP Light Block: 1x1 reduce (8x) -> RepMLP -> 1x1 expand, no 3x3 conv.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        repmlp_cfg (dict): arguments of the inner :class:`RepMLPBlock` other than its channels,
            ``norm_cfg`` and ``deploy``; ``in_size`` and ``partition_size`` are required.
        reduction (int): ratio of ``out_channels`` to the RepMLP's channels. Defaults to 8.
        norm_cfg (dict, optional): config of the norm layers. Defaults to ``dict(type='BN')``.
        with_cp (bool): gradient checkpointing of the residual branch. Defaults to False.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 repmlp_cfg,
                 reduction=8,
                 norm_cfg=None,
                 with_cp=False,
                 deploy=False,
                 init_cfg=None):
        super().__init__(in_channels, out_channels, 1, norm_cfg, with_cp, deploy, init_cfg)
        repmlp_channels = _divide(out_channels, reduction, 'out_channels', 'reduction')
        conv_args = dict(norm_cfg=self.norm_cfg, deploy=deploy)
        self.conv1 = ConvBN(in_channels, repmlp_channels, 1, **conv_args)
        self.repmlp = RepMLPBlock(repmlp_channels, repmlp_channels, **repmlp_cfg, **conv_args)
        self.conv3 = ConvBN(repmlp_channels, out_channels, 1, **conv_args)

    def residual(self, x):
        out = F.relu(self.conv1(x), inplace=True)
        out = F.relu(self.repmlp(out), inplace=True)
        return self.conv3(out)


def _divide(channels, ratio, channels_name, ratio_name):
    if ratio < 1 or channels % ratio:
        raise ValueError(f'{channels_name}={channels} must be divisible by {ratio_name}={ratio}; '
                         'choose widths that are multiples of it')
    return channels // ratio
