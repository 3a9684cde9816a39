import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...reparam import absorb_bn_into_fc, conv_to_fc, fuse_bn, pad_kernel
from ..layers import ConvBN, GroupwiseFC

LOCAL_IMPLS = ('fused', 'per_branch')


def _pair(value, name):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f'RepMLPBlock: {name} must be a positive int or a pair of them, '
                         f'got {value!r}')
    return pair


def _as_1d_norm(norm_cfg):
    """The norm config for FC3's output ``(N, O*h*w)``: 2-D BN becomes BN1d."""
    cfg = dict(norm_cfg)
    if cfg['type'] in ('BN', 'BN2d'):
        cfg['type'] = 'BN1d'
    return cfg


@MODELS.register_module()
class RepMLPBlock(BaseModule):
    """The RepMLP block (Ding et al., arXiv 2105.01883): FC layers with parallel conv branches.

    Training form, on an input ``(N, C, H, W)`` cut into partitions of ``h x w``:

    - Global Perceptron (only when there is more than one partition): average-pool each
      partition, BN, FC1 -> ReLU -> FC2 (hidden size ``C*(H/h)*(W/w) / fc1_fc2_reduction``),
      and add the result to every pixel of its partition;
    - Partition Perceptron: a groupwise FC3 from ``C*h*w`` to ``O*h*w`` (``groups`` groups)
      on every partition, then BN;
    - Local Perceptron: for each kernel in ``local_kernels``, a conv (``groups`` groups,
      "same" padding inside the partition) + BN, added to FC3's output.

    The deploy form (:meth:`switch_to_deploy` or ``deploy=True``) keeps only FC1, FC2 and one
    FC3 with bias, computing exactly the same function.

    Input sizes that are not multiples of the partition are zero-padded at the bottom and
    right up to the next multiple, processed, and the output is cropped back to ``H x W``;
    the padded pixels take part in the Global Perceptron's average (as zeros) and in the FCs,
    identically in both forms, so conversion stays exact.

    Args:
        in_channels (int): input channels ``C``.
        out_channels (int): output channels ``O``.
        in_size (int | tuple[int, int]): input size ``(H, W)``; inputs must have this size.
        partition_size (int | tuple[int, int]): partition size ``(h, w)``, at most the input.
        groups (int): groups ``g`` of FC3 and of the Local Perceptron's convs. Defaults to 1.
        local_kernels (Sequence[int | tuple[int, int]]): kernel sizes of the Local
            Perceptron, odd and at most the partition; ``()`` builds none. Defaults to
            ``(1, 3, 5)``.
        fc1_fc2_reduction (int): ratio of FC1's input size to its output size. Defaults to 1.
        with_global (bool): build the Global Perceptron (the paper's ablation C sets False).
            Defaults to True.
        norm_cfg (dict): config of the norm layers. Defaults to ``dict(type='BN')``.
        fc_impl (str): ``'matmul'`` (batched matmul, fast) or ``'conv'`` (grouped 1x1 conv,
            the official reference path) for the groupwise FC3. Defaults to 'matmul'.
        local_impl (str): ``'fused'`` (one conv with the kernels padded and stacked on the
            output channels, each branch keeping its own BN) or ``'per_branch'`` (one conv
            per kernel). Same result. Defaults to 'fused'.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels,
                 out_channels,
                 in_size,
                 partition_size,
                 groups=1,
                 local_kernels=(1, 3, 5),
                 fc1_fc2_reduction=1,
                 with_global=True,
                 norm_cfg=dict(type='BN'),
                 fc_impl='matmul',
                 local_impl='fused',
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size = _pair(in_size, 'in_size')
        self.partition_size = _pair(partition_size, 'partition_size')
        self.groups = groups
        self.local_kernels = tuple(sorted({_pair(k, 'local_kernels') for k in local_kernels}))
        self.fc1_fc2_reduction = fc1_fc2_reduction
        self.local_impl = local_impl
        self.deploy = deploy
        self._check_config(fc_impl)

        (H, W), (h, w) = self.in_size, self.partition_size
        self.num_parts = (math.ceil(H / h), math.ceil(W / w))
        self.padded_size = (self.num_parts[0] * h, self.num_parts[1] * w)
        self.with_global = with_global and self.num_parts != (1, 1)
        num_pixels = h * w

        if self.with_global:
            global_size = in_channels * self.num_parts[0] * self.num_parts[1]
            if global_size % fc1_fc2_reduction:
                raise ValueError(
                    f'RepMLPBlock: fc1_fc2_reduction={fc1_fc2_reduction} must divide FC1\'s '
                    f'input size C*(H/h)*(W/w) = {global_size}')
            if not deploy:
                self.global_bn = build_norm_layer(norm_cfg, in_channels)[1]
            self.fc1 = nn.Linear(global_size, global_size // fc1_fc2_reduction)
            self.fc2 = nn.Linear(global_size // fc1_fc2_reduction, global_size)

        self.fc3 = GroupwiseFC(in_channels * num_pixels, out_channels * num_pixels, groups,
                               bias=deploy, impl=fc_impl)
        if not deploy:
            self.fc3_bn = build_norm_layer(_as_1d_norm(norm_cfg), out_channels * num_pixels)[1]
            self.local_perceptron = nn.ModuleDict({
                f'conv{kh}x{kw}': ConvBN(in_channels, out_channels, (kh, kw),
                                         padding=(kh // 2, kw // 2), groups=groups,
                                         norm_cfg=norm_cfg)
                for kh, kw in self.local_kernels
            })

    def _check_config(self, fc_impl):
        C, O, g = self.in_channels, self.out_channels, self.groups
        (H, W), (h, w) = self.in_size, self.partition_size
        if C % g or O % g:
            raise ValueError(f'RepMLPBlock: in_channels={C} and out_channels={O} must both '
                             f'be divisible by groups={g}')
        if h > H or w > W:
            raise ValueError(f'RepMLPBlock: partition_size {(h, w)} is larger than in_size '
                             f'{(H, W)}; use a partition at most as large as the input')
        for kh, kw in self.local_kernels:
            if kh % 2 == 0 or kw % 2 == 0:
                raise ValueError(f'RepMLPBlock: local kernel {(kh, kw)} must have odd sizes '
                                 '(it is centred on each pixel)')
            if kh > h or kw > w:
                raise ValueError(f'RepMLPBlock: local kernel {(kh, kw)} is larger than the '
                                 f'partition {(h, w)}; drop it or enlarge the partition')
        if self.fc1_fc2_reduction < 1:
            raise ValueError('RepMLPBlock: fc1_fc2_reduction must be a positive int, got '
                             f'{self.fc1_fc2_reduction}')
        if self.local_impl not in LOCAL_IMPLS:
            raise ValueError(f'RepMLPBlock: local_impl must be one of {LOCAL_IMPLS}, got '
                             f'{self.local_impl!r}')
        if fc_impl not in ('matmul', 'conv'):
            raise ValueError("RepMLPBlock: fc_impl must be 'matmul' or 'conv', got "
                             f'{fc_impl!r}')

    # ----------------------------------------------------------------- forward
    def forward(self, x):
        self._check_input(x)
        N, C = x.shape[:2]
        (H, W), (h, w), (nh, nw) = self.in_size, self.partition_size, self.num_parts
        if (H, W) != self.padded_size:
            x = F.pad(x, (0, self.padded_size[1] - W, 0, self.padded_size[0] - H))
        x = x.reshape(N, C, nh, h, nw, w)
        if self.with_global:
            x = x + self._global_perceptron(x).reshape(N, C, nh, 1, nw, 1)
        # (N, C, nh, h, nw, w) -> (N*nh*nw, C, h, w): one sample per partition
        partitions = x.permute(0, 2, 4, 1, 3, 5).reshape(N * nh * nw, C, h, w)
        out = self.fc3(partitions.reshape(N * nh * nw, C * h * w))
        if not self.deploy:
            out = self.fc3_bn(out)
            if self.local_kernels:
                out = out + self._local_perceptron(partitions).reshape_as(out)
        O = self.out_channels
        out = out.reshape(N, nh, nw, O, h, w).permute(0, 3, 1, 4, 2, 5)
        out = out.reshape(N, O, nh * h, nw * w)
        if (H, W) != self.padded_size:
            out = out[:, :, :H, :W]
        return out

    def _check_input(self, x):
        expected = (self.in_channels, *self.in_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f'{type(self).__name__} was built for inputs (N, C, H, W) = (N, '
                f'{", ".join(map(str, expected))}) but got {tuple(x.shape)}; set in_channels '
                'and in_size (the backbone\'s img_size) to match the input')

    def _global_perceptron(self, x):
        """``x``: ``(N, C, nh, h, nw, w)`` -> one value per channel and partition."""
        pooled = x.mean(dim=(3, 5))
        if not self.deploy:
            pooled = self.global_bn(pooled)
        hidden = F.relu(self.fc1(pooled.flatten(1)))
        return self.fc2(hidden)

    def _local_perceptron(self, partitions):
        branches = list(self.local_perceptron.values())
        if self.local_impl == 'per_branch' or len(branches) == 1:
            return sum(branch(partitions) for branch in branches)
        # One conv whose output channels stack every branch (kernels padded to the largest),
        # grouped per conv group so the stacked conv keeps the same grouping.
        g, O, C = self.groups, self.out_channels, self.in_channels
        kmax = self._largest_kernel()
        weight = torch.stack(
            [pad_kernel(b.conv.weight, kmax).reshape(g, O // g, C // g, *kmax) for b in branches],
            dim=1).reshape(len(branches) * O, C // g, *kmax)
        stacked = F.conv2d(partitions, weight, padding=(kmax[0] // 2, kmax[1] // 2), groups=g)
        n, _, h, w = stacked.shape
        stacked = stacked.reshape(n, g, len(branches), O // g, h, w)
        return sum(
            branch.bn(stacked[:, :, i].reshape(n, O, h, w)) for i, branch in enumerate(branches))

    def _largest_kernel(self):
        return (max(k[0] for k in self.local_kernels), max(k[1] for k in self.local_kernels))

    # ----------------------------------------------------------- re-parameterization
    def get_equivalent_fc1_fc3_params(self):
        """The deploy form's FC1 and FC3 parameters, computed from the training form.

        Differentiable (use it for quantization-aware training or penalty-based pruning).

        Returns:
            tuple: ``(fc1_weight, fc1_bias, fc3_weight, fc3_bias)``; the FC1 entries are
            ``None`` without a Global Perceptron. ``fc3_weight`` is ``(O*h*w, C*h*w // g)``.
        """
        if self.deploy:
            fc1 = (self.fc1.weight, self.fc1.bias) if self.with_global else (None, None)
            return (*fc1, self.fc3.weight, self.fc3.bias)
        fc3_weight, fc3_bias = fuse_bn(self.fc3.weight, None, self.fc3_bn.running_mean,
                                       self.fc3_bn.running_var, self.fc3_bn.weight,
                                       self.fc3_bn.bias, self.fc3_bn.eps)
        if self.local_kernels:
            kmax = self._largest_kernel()
            fused = [b.fused_weight_bias() for b in self.local_perceptron.values()]
            kernel = sum(pad_kernel(k, kmax) for k, _ in fused)
            bias = sum(b for _, b in fused)
            local_weight, local_bias = conv_to_fc(kernel, bias, self.partition_size, self.groups)
            fc3_weight = fc3_weight + local_weight
            fc3_bias = fc3_bias + local_bias
        if not self.with_global:
            return None, None, fc3_weight, fc3_bias
        bn = self.global_bn
        fc1_weight, fc1_bias = absorb_bn_into_fc(
            self.fc1.weight, self.fc1.bias, bn.running_mean, bn.running_var, bn.weight,
            bn.bias, bn.eps, repeats=self.num_parts[0] * self.num_parts[1])
        return fc1_weight, fc1_bias, fc3_weight, fc3_bias

    def switch_to_deploy(self):
        """Merge every BN and the Local Perceptron into FC1 and FC3 (idempotent).

        Uses the BN running statistics, so it is safe on a model in train mode.
        """
        if self.deploy:
            return
        with torch.no_grad():
            fc1_weight, fc1_bias, fc3_weight, fc3_bias = self.get_equivalent_fc1_fc3_params()
        old = self.fc3
        self.fc3 = GroupwiseFC(old.in_features, old.out_features, old.groups, bias=True,
                               impl=old.impl, device=fc3_weight.device, dtype=fc3_weight.dtype)
        self.fc3.weight.data.copy_(fc3_weight)
        self.fc3.bias.data.copy_(fc3_bias)
        if self.with_global:
            self.fc1.weight.data.copy_(fc1_weight)
            self.fc1.bias.data.copy_(fc1_bias)
            del self.global_bn
        del self.fc3_bn, self.local_perceptron
        self.deploy = True


@MODELS.register_module()
class RepMLP1d(RepMLPBlock):
    """RepMLP for sequences ``(N, C, L)``: the same three perceptrons over length partitions.

    Implemented as :class:`RepMLPBlock` on ``(N, C, 1, L)`` with partitions ``1 x l`` and
    kernels ``1 x k``, so conversion is exactly the 2-D one.

    Args:
        in_channels (int): input channels ``C``.
        out_channels (int): output channels ``O``.
        in_length (int): input length ``L``.
        partition_length (int): partition length ``l``.
        local_kernels (Sequence[int]): odd kernel sizes ``<= l``. Defaults to ``(1, 3, 5)``.
        **kwargs: the other arguments of :class:`RepMLPBlock`.
    """

    def __init__(self, in_channels, out_channels, in_length, partition_length,
                 local_kernels=(1, 3, 5), **kwargs):
        super().__init__(in_channels, out_channels, (1, in_length), (1, partition_length),
                         local_kernels=[(1, k) for k in local_kernels], **kwargs)

    def forward(self, x):
        if x.dim() != 3:
            raise ValueError(f'RepMLP1d expects inputs (N, C, L) = (N, {self.in_channels}, '
                             f'{self.in_size[1]}) but got {tuple(x.shape)}')
        return super().forward(x.unsqueeze(2)).squeeze(2)
