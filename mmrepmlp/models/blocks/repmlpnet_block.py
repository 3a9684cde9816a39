"""RepMLPNet's RepMLP block and unit (Ding et al., "RepMLPNet: Hierarchical Vision MLP with
Re-parameterized Locality", CVPR 2022)."""
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch.func import functional_call

from ...reparam import inject_locality
from ..arguments import check_bool, check_int, check_norm_cfg, check_pair
from ..layers import ConvBN, GroupwiseFC


def conv_bn(in_channels, out_channels, kernel_size, stride=1, norm_cfg=None, relu=False):
    """A conv without bias, a norm layer and optionally a ReLU, as ``nn.Sequential`` (``conv``,
    ``bn``[, ``relu``]).

    Not :class:`~mmrepmlp.models.layers.ConvBN`: RepMLPNet's deploy form keeps these pairs, as
    the official and MMPretrain deploy models do, so that their checkpoints load unchanged.
    """
    layers = OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride, bias=False),
        bn=build_norm_layer(norm_cfg or dict(type='BN'), out_channels)[1])
    if relu:
        layers['relu'] = nn.ReLU(inplace=True)
    return nn.Sequential(layers)


@MODELS.register_module()
class RepMLPNetBlock(BaseModule):
    """RepMLPNet's RepMLP block: channel attention times a share-set FC3 with conv branches.

    On an input ``(N, C, H, W)`` cut into partitions of ``h x w``, the ``C`` channels form
    ``C / S`` rows of ``S`` share-sets (channel ``c`` is share-set ``c mod S``):

    - Partition Perceptron: FC3, one ``h*w -> h*w`` FC per share-set applied to every channel
      of the share-set in every partition, then a BN over the ``S`` share-sets;
    - Local Perceptron: for each kernel in ``local_kernels``, a conv of each share-set's
      channels on their own (``S -> S``, ``S`` groups, "same" zero padding inside the
      partition) + BN, added to FC3's output;
    - Global Perceptron: channel attention on the whole input (average pool, FC ``C -> C /
      gp_reduction``, ReLU, FC back to ``C``, sigmoid) that multiplies the output.

    The deploy form (:meth:`switch_to_deploy` or ``deploy=True``, the official
    "locality injection") keeps the Global Perceptron and one FC3 with bias, and computes the
    same function (up to float rounding) in any dtype.

    Any input size runs: a map that is not a multiple of the partition is zero-padded at the
    bottom and right to whole partitions for FC3 and the convs, and the output is cropped
    back; the Global Perceptron pools the unpadded map. On multiples of the partition this is
    what the official code computes; the backbone decides which sizes it accepts.

    Args:
        channels (int): input and output channels ``C``, divisible by ``num_sharesets``.
        partition_size (int | tuple[int, int]): partition size ``(h, w)``.
        num_sharesets (int): share-sets ``S``. Defaults to 1.
        local_kernels (Sequence[int | tuple[int, int]]): kernel sizes of the Local
            Perceptron, odd (taps beyond a small partition read its zero padding); ``()``
            builds none. Defaults to ``(1, 3)``.
        gp_reduction (int): ratio of ``C`` to the Global Perceptron's hidden width (rounded
            down, as in the official code). Defaults to 4.
        norm_cfg (dict): config of the norm layers. Defaults to ``dict(type='BN')``.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 channels,
                 partition_size,
                 num_sharesets=1,
                 local_kernels=(1, 3),
                 gp_reduction=4,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        owner = type(self).__name__
        self.channels = check_int(channels, 'channels', owner)
        self.partition_size = check_pair(partition_size, 'partition_size', owner)
        self.num_sharesets = check_int(num_sharesets, 'num_sharesets', owner)
        self.local_kernels = self._parse_kernels(local_kernels, owner)
        gp_reduction = check_int(gp_reduction, 'gp_reduction', owner)
        norm_cfg = check_norm_cfg(norm_cfg, owner)
        self.deploy = check_bool(deploy, 'deploy', owner)
        S, (h, w) = self.num_sharesets, self.partition_size
        if channels % S:
            raise ValueError(f'{owner}: channels={channels} must be divisible by '
                             f'num_sharesets={S}')
        if channels // gp_reduction < 1:
            raise ValueError(f'{owner}: gp_reduction={gp_reduction} leaves the Global '
                             f'Perceptron of {channels} channels no hidden unit; use at most '
                             f'{channels}')

        self.fc1 = nn.Linear(channels, channels // gp_reduction)
        self.fc2 = nn.Linear(channels // gp_reduction, channels)
        self.fc3 = GroupwiseFC(S * h * w, S * h * w, S, bias=self.deploy)
        if not self.deploy:
            self.fc3_bn = build_norm_layer(norm_cfg, S)[1]
            self.local_perceptron = nn.ModuleDict({
                f'conv{kh}x{kw}': ConvBN(S, S, (kh, kw), padding=(kh // 2, kw // 2), groups=S,
                                         norm_cfg=norm_cfg)
                for kh, kw in self.local_kernels
            })

    def _parse_kernels(self, local_kernels, owner):
        if not isinstance(local_kernels, (list, tuple)):
            raise TypeError(f'{owner}: local_kernels must be a list of odd kernel sizes (ints '
                            f'or (kh, kw) pairs), () for none, got {local_kernels!r}')
        kernels = sorted({check_pair(k, 'local_kernels', owner) for k in local_kernels})
        if len(kernels) != len(local_kernels):
            raise ValueError(f'{owner}: local_kernels {list(local_kernels)} lists a kernel size '
                             'more than once; list each once')
        for kh, kw in kernels:
            if kh % 2 == 0 or kw % 2 == 0:
                raise ValueError(f'{owner}: local_kernels entry {(kh, kw)} must have odd sizes '
                                 '(it is centred on each pixel)')
        return tuple(kernels)

    # ----------------------------------------------------------------- forward
    def forward(self, x):
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        return self._forward(x)

    def forward_with_fcs(self, x, fc1, fc2, fc3):
        """The deploy form's computation on ``x`` with the given FC parameters instead of the
        block's own: the block's function when they are its equivalent ones
        (:meth:`get_deploy_fcs`), differentiable in them.

        Args:
            x (Tensor): the input, as for :meth:`forward`.
            fc1 (tuple[Tensor, Tensor]): the Global Perceptron's FC1 ``(weight, bias)``.
            fc2 (tuple[Tensor, Tensor]): its FC2 ``(weight, bias)``.
            fc3 (tuple[Tensor, Tensor]): FC3's ``(weight, bias)`` in the deploy form's layout
                ``(S*h*w, h*w)``.
        """
        return self._forward(x, (fc1, fc2, fc3))

    def _forward(self, x, fcs=None):
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f'{type(self).__name__} was built for inputs (N, {self.channels}, '
                             f'H, W) but got {tuple(x.shape)}; set channels to match the input')
        attention = self._global_perceptron(x, fcs)
        partitions, num_parts = self._partition(x)
        if fcs is None:
            out = self._partition_perceptron(partitions)
        else:
            out = self._deploy_fc3(partitions, *fcs[2])
        return self._unpartition(out, attention, num_parts, x.shape[2:])

    def _global_perceptron(self, x, fcs=None):
        """``(N, C)``: the channel attention of the whole map (``fcs``: see
        :meth:`forward_with_fcs`)."""
        pooled = x.mean((2, 3))
        if fcs is None:
            return torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        (fc1_weight, fc1_bias), (fc2_weight, fc2_bias), _ = fcs
        hidden = F.relu(F.linear(pooled, fc1_weight, fc1_bias))
        return torch.sigmoid(F.linear(hidden, fc2_weight, fc2_bias))

    def _partition(self, x):
        """``(N, C, H, W)`` -> ``(N*nh*nw*C/S, S, h, w)`` (rows ordered ``N, nh, nw, C/S``) and
        ``(nh, nw)``; a view when the map is one partition."""
        N, C, H, W = x.shape
        (h, w), S = self.partition_size, self.num_sharesets
        nh, nw = math.ceil(H / h), math.ceil(W / w)
        if (H, W) != (nh * h, nw * w):
            x = F.pad(x, (0, nw * w - W, 0, nh * h - H))
        partitions = x.reshape(N, C, nh, h, nw, w).permute(0, 2, 4, 1, 3, 5)
        return partitions.reshape(-1, S, h, w), (nh, nw)

    def _deploy_fc3(self, partitions, weight, bias):
        """The deploy form's FC3 with the given weight and bias, features first."""
        rows, S, h, w = partitions.shape
        # The equivalent FC3 has the deploy form's layout whatever FC3 is in training; a
        # parameterless (meta) GroupwiseFC runs it on these tensors.
        deploy_fc3 = GroupwiseFC(S * h * w, S * h * w, S, device='meta')
        flat = partitions.reshape(rows, S * h * w)
        return functional_call(deploy_fc3, {'weight': weight, 'bias': bias}, (flat, )).t()

    def _partition_perceptron(self, partitions):
        """FC3 (+ BN and the Local Perceptron in training form): ``(S*h*w, rows)``,
        features first (the layout the batched matmul produces)."""
        rows, S, h, w = partitions.shape
        out = self.fc3.features_first(partitions.reshape(rows, S * h * w))
        if self.deploy:
            return out
        # BN over the share-sets: (1, S, h*w, rows) has them as its channel dimension.
        out = self.fc3_bn(out.reshape(1, S, h * w, rows)).reshape(S * h * w, rows)
        if self.local_kernels:
            branches = iter(self.local_perceptron.values())
            local = next(branches)(partitions)
            for branch in branches:
                local = local + branch(partitions)
            out = out + local.reshape(rows, S * h * w).t()
        return out

    def _unpartition(self, out, attention, num_parts, size):
        """FC3's output ``(S*h*w, rows)`` times the attention ``(N, C)`` -> ``(N, C, H, W)``."""
        (h, w), S, (nh, nw) = self.partition_size, self.num_sharesets, num_parts
        N, C = attention.shape
        out = out.reshape(S, h, w, N, nh, nw, C // S)
        out = out * attention.reshape(N, C // S, S).permute(2, 0, 1).reshape(
            S, 1, 1, N, 1, 1, C // S)
        out = out.permute(3, 6, 0, 4, 1, 5, 2).reshape(N, C, nh * h, nw * w)
        if (nh * h, nw * w) != tuple(size):
            out = out[:, :, :size[0], :size[1]]
        return out

    # ----------------------------------------------------------- re-parameterization
    def get_equivalent_fc1_fc3_params(self):
        """The deploy form's FC1 and FC3 parameters, from the training form.

        FC1 is the Global Perceptron's own (it has no BN to absorb); FC3 absorbs its BN and the
        Local Perceptron, with the BN running statistics. Differentiable (for
        quantization-aware training or penalties on the equivalent kernel).

        Returns:
            tuple: ``(fc1_weight, fc1_bias, fc3_weight, fc3_bias)``, ``fc3_weight`` in the
            layout ``(S*h*w, h*w)``.
        """
        fc1 = (self.fc1.weight, self.fc1.bias)
        if self.deploy:
            return (*fc1, self.fc3.weight, self.fc3.bias)
        branches = [branch.fused_weight_bias() for branch in self.local_perceptron.values()]
        return (*fc1, *inject_locality(self.fc3, self.fc3_bn, branches, self.partition_size))

    def get_deploy_fcs(self):
        """The deploy form's FC1, FC2 and FC3, each ``(weight, bias)``: what
        :meth:`forward_with_fcs` takes (FC3 as :meth:`get_equivalent_fc1_fc3_params` gives
        it; the Global Perceptron's FCs are its own)."""
        fc1_weight, fc1_bias, fc3_weight, fc3_bias = self.get_equivalent_fc1_fc3_params()
        return (fc1_weight, fc1_bias), (self.fc2.weight, self.fc2.bias), (fc3_weight, fc3_bias)

    def switch_to_deploy(self):
        """Merge FC3's BN and the Local Perceptron into FC3 (idempotent).

        Uses the BN running statistics, so it is safe on a model in train mode.
        """
        if self.deploy:
            return
        with torch.no_grad():
            weight, bias = self.get_equivalent_fc1_fc3_params()[2:]
        self.fc3 = GroupwiseFC.from_weight(weight, bias, self.num_sharesets)
        del self.fc3_bn, self.local_perceptron
        self.deploy = True


@MODELS.register_module()
class RepMLPNetUnit(BaseModule):
    """A RepMLPNet unit: ``y = x + RepMLP(BN(x))``, ``z = y + FFN(BN(y))``.

    The FFN is 1x1 conv + BN (``C -> ffn_ratio * C``), GELU, 1x1 conv + BN (back to ``C``).

    Args:
        channels (int): input and output channels.
        partition_size (int | tuple[int, int]): the RepMLP block's partition size.
        num_sharesets (int): the RepMLP block's share-sets. Defaults to 1.
        local_kernels (Sequence[int | tuple[int, int]]): the RepMLP block's Local Perceptron
            kernels. Defaults to ``(1, 3)``.
        gp_reduction (int): the RepMLP block's Global Perceptron reduction. Defaults to 4.
        ffn_ratio (int): the FFN's hidden width over ``channels``. Defaults to 4.
        norm_cfg (dict): config of the norm layers. Defaults to ``dict(type='BN')``.
        deploy (bool): build the RepMLP block's deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 channels,
                 partition_size,
                 num_sharesets=1,
                 local_kernels=(1, 3),
                 gp_reduction=4,
                 ffn_ratio=4,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        hidden = channels * check_int(ffn_ratio, 'ffn_ratio', type(self).__name__)
        self.norm1 = build_norm_layer(norm_cfg, channels)[1]
        self.repmlp = RepMLPNetBlock(channels, partition_size, num_sharesets, local_kernels,
                                     gp_reduction, norm_cfg, deploy)
        self.norm2 = build_norm_layer(norm_cfg, channels)[1]
        self.ffn = nn.Sequential(OrderedDict(
            fc1=conv_bn(channels, hidden, 1, norm_cfg=norm_cfg),
            act=nn.GELU(),
            fc2=conv_bn(hidden, channels, 1, norm_cfg=norm_cfg)))

    def forward(self, x):
        x = x + self.repmlp(self.norm1(x))
        return x + self.ffn(self.norm2(x))
