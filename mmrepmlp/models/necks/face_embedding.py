"""Embedding necks of face recognition: a backbone's last feature map to the face embedding.

Both output layers live here, not in the backbones, so that every face model is
``backbone (feature maps) -> neck (embedding) -> margin head`` and either neck fits any
backbone: :class:`FaceEmbeddingNeck` is the BN-Dropout-FC-BN layer of ResNet-style face
networks (ArcFace, Deng et al., 2019), :class:`GDCEmbeddingNeck` MobileFaceNet's global
depthwise conv (Chen et al., 2018). Each is built for one feature-map size (``in_size``),
which follows from the input size (e.g. 6x6 for MobileFaceNet at 96x96, 7x7 at 112x112),
and has an exact deploy form: every BN is folded into the adjacent conv or FC.
"""
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...reparam import absorb_bn_module_into_fc, fuse_bn, fuse_conv_bn
from ..arguments import check_bool, check_int, check_pair
from ..layers import ConvBN


class LinearBN(BaseModule):
    """An ``nn.Linear`` without bias and a BN1d; its deploy form is one ``nn.Linear`` with bias.

    A bias before the BN would be cancelled by the BN's mean, so the training form has none.

    Args:
        in_features (int): input size.
        out_features (int): output size.
        deploy (bool): build the fused deploy form directly. Defaults to False.
    """

    def __init__(self, in_features, out_features, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.linear = nn.Linear(in_features, out_features, bias=deploy)
        if not deploy:
            self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x):
        x = self.linear(x)
        return x if self.deploy else self.bn(x)

    def fused_weight_bias(self):
        """The weight and bias of the equivalent linear (differentiable)."""
        if self.deploy:
            return self.linear.weight, self.linear.bias
        return fuse_conv_bn(self.linear, self.bn)

    def switch_to_deploy(self):
        """Fuse the BN into the linear (uses running stats; idempotent)."""
        if not self.deploy:
            self.load_fused(*self.fused_weight_bias())

    def load_fused(self, weight, bias):
        """Become the deploy form with the given linear ``weight`` and ``bias``."""
        self.linear.weight = nn.Parameter(weight.detach())
        self.linear.bias = nn.Parameter(bias.detach())
        if hasattr(self, 'bn'):
            del self.bn
        self.deploy = True


class _EmbeddingNeck(BaseModule):
    """Checks of the arguments and of the input map shared by the embedding necks.

    ``forward`` takes a feature map, or a tuple of them (the last is used, as heads do), and
    returns the embedding (in a one-element tuple for a tuple input); subclasses implement
    :meth:`embed` and ``switch_to_deploy``.
    """

    def __init__(self, in_channels, in_size, embedding_dim, deploy, init_cfg):
        super().__init__(init_cfg)
        owner = type(self).__name__
        self.in_channels = check_int(in_channels, 'in_channels', owner)
        self.in_size = check_pair(in_size, 'in_size', owner)
        self.embedding_dim = check_int(embedding_dim, 'embedding_dim', owner)
        self.deploy = check_bool(deploy, 'deploy', owner)

    def forward(self, inputs):
        if isinstance(inputs, (tuple, list)):
            return (self.forward(inputs[-1]), )
        expected = (self.in_channels, *self.in_size)
        if inputs.dim() != 4 or tuple(inputs.shape[1:]) != expected:
            raise ValueError(
                f'{type(self).__name__} was built for (N, {", ".join(map(str, expected))}) '
                f'feature maps (in_channels, in_size) but got {tuple(inputs.shape)}; set '
                "them to the backbone's last feature map at this input size")
        return self.embed(inputs)

    def embed(self, x):
        raise NotImplementedError


@MODELS.register_module()
class FaceEmbeddingNeck(_EmbeddingNeck):
    """BN2d -> Dropout -> Flatten -> FC -> BN1d: the output layer of ResNet-style face nets.

    The ``BN-Dropout-FC-BN`` embedding of ArcFace (Deng et al., 2019): for a ResNet whose last
    map is ``(N, 1024, 3, 3)`` at 96x96 inputs, ``in_channels=1024, in_size=3``. In the deploy
    form both BNs are folded into the FC (dropout is the identity at inference), which becomes
    one ``C*h*w -> embedding_dim`` linear with bias.

    Args:
        in_channels (int): channels ``C`` of the feature map.
        in_size (int | tuple[int, int]): its size ``(h, w)``.
        embedding_dim (int): embedding size. Defaults to 512.
        dropout (float): dropout probability before the FC. Defaults to 0.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self, in_channels, in_size, embedding_dim=512, dropout=0.0, deploy=False,
                 init_cfg=None):
        super().__init__(in_channels, in_size, embedding_dim, deploy, init_cfg)
        if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f'FaceEmbeddingNeck: dropout must be in [0, 1), got {dropout!r}')
        if not deploy:
            self.bn = nn.BatchNorm2d(self.in_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = LinearBN(self.in_channels * self.num_pixels, self.embedding_dim, deploy=deploy)

    @property
    def num_pixels(self):
        return self.in_size[0] * self.in_size[1]

    def embed(self, x):
        if not self.deploy:
            x = self.bn(x)
        return self.fc(self.dropout(x).flatten(1))

    def switch_to_deploy(self):
        """Fold the BN2d and the BN1d into the FC (uses running stats; idempotent)."""
        if self.deploy:
            return
        # The flatten is channel-major, so each BN2d channel feeds h*w consecutive inputs.
        weight, bias = absorb_bn_module_into_fc(self.fc.linear, self.bn, repeats=self.num_pixels)
        bn1d = self.fc.bn
        self.fc.load_fused(*fuse_bn(weight, bias, bn1d.running_mean, bn1d.running_var,
                                    bn1d.weight, bn1d.bias, bn1d.eps))
        del self.bn
        self.deploy = True


@MODELS.register_module()
class GDCEmbeddingNeck(_EmbeddingNeck):
    """MobileFaceNet's output layer: global depthwise conv + BN, Flatten, FC (no bias), BN1d.

    The global depthwise conv (MobileFaceNets, Chen et al., 2018) has one ``h x w`` kernel per
    channel, the size of the whole map, so it weighs every position instead of averaging
    them; ``in_size`` is that map size (7 for 112x112 inputs, 6 for 96x96). The deploy form
    is a depthwise conv with bias and a linear with bias.

    Args:
        in_channels (int): channels of the feature map. Defaults to 512.
        in_size (int | tuple[int, int]): its size ``(h, w)``. Defaults to 7.
        embedding_dim (int): embedding size (128 in the paper, 512 in common recipes).
            Defaults to 512.
        norm_cfg (dict): config of the conv's norm layer. Defaults to ``dict(type='BN')``.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self, in_channels=512, in_size=7, embedding_dim=512,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 deploy=False, init_cfg=None):
        super().__init__(in_channels, in_size, embedding_dim, deploy, init_cfg)
        self.gdc = ConvBN(self.in_channels, self.in_channels, self.in_size,
                          groups=self.in_channels, norm_cfg=norm_cfg, deploy=deploy)
        self.fc = LinearBN(self.in_channels, self.embedding_dim, deploy=deploy)

    def embed(self, x):
        return self.fc(self.gdc(x).flatten(1))

    def switch_to_deploy(self):
        """Fuse the conv's BN and the BN1d (uses running stats; idempotent)."""
        self.gdc.switch_to_deploy()
        self.fc.switch_to_deploy()
        self.deploy = True
