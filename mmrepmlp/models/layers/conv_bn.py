import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from ...reparam import fuse_conv_bn


class ConvBN(BaseModule):
    """A conv without bias followed by a norm layer; its deploy form is one conv with bias.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int | tuple[int, int]): conv kernel size.
        stride (int): conv stride. Defaults to 1.
        padding (int | tuple[int, int]): conv padding. Defaults to 0.
        dilation (int): conv dilation. Defaults to 1.
        groups (int): conv groups. Defaults to 1.
        norm_cfg (dict): config of the norm layer. Defaults to ``dict(type='BN')``.
        deploy (bool): build the fused deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 kernel_size,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups=1,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.deploy = deploy
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              dilation, groups, bias=deploy)
        if not deploy:
            self.bn = build_norm_layer(norm_cfg, out_channels)[1]

    def forward(self, x):
        x = self.conv(x)
        return x if self.deploy else self.bn(x)

    def fused_weight_bias(self):
        """The weight and bias of the equivalent conv (differentiable)."""
        if self.deploy:
            return self.conv.weight, self.conv.bias
        return fuse_conv_bn(self.conv, self.bn)

    def switch_to_deploy(self):
        """Fuse the norm layer into the conv (uses running stats; idempotent)."""
        if self.deploy:
            return
        weight, bias = (t.detach() for t in self.fused_weight_bias())
        # New parameters on the existing conv: a new conv would spend time on a random
        # initialization overwritten at once.
        self.conv.weight = nn.Parameter(weight)
        self.conv.bias = nn.Parameter(bias)
        del self.bn
        self.deploy = True
