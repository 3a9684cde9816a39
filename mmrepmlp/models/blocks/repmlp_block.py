import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...reparam import (
    absorb_bn_module_into_fc,
    add_conv_to_fc_,
    fc3_to_partition_major,
    fuse_conv_bn,
    global_fcs_to_partition_major,
    pad_kernel,
)
from ..arguments import (
    check_bool,
    check_choice,
    check_int,
    check_int_sequence,
    check_norm_cfg,
    check_pair,
)
from ..layers import ConvBN, GroupwiseFC, grouped_linear

LARGER_INPUTS = ('error', 'windows')


def _as_1d_norm(norm_cfg):
    """The norm config for FC3's output ``(N, O*h*w)``: 2-D BN becomes BN1d."""
    cfg = dict(norm_cfg)
    if cfg['type'] in ('BN', 'BN2d'):
        cfg['type'] = 'BN1d'
    return cfg


class LocalPerceptron(nn.ModuleDict):
    """The Local Perceptron: conv + BN branches (:class:`ConvBN`) by name, their outputs
    summed."""

    def forward(self, x):
        branches = iter(self.values())
        out = next(branches)(x)
        for branch in branches:
            out = out + branch(x)
        return out


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
      "same" zero padding inside the partition) + BN, added to FC3's output.

    The deploy form (:meth:`switch_to_deploy` or ``deploy=True``) keeps only FC1, FC2 and one
    FC3 with bias, and computes exactly the same function (up to float rounding). Its FCs order
    their features partition-major: FC3's ``(g, h, w, C/g)`` instead of the training form's
    ``(C, h, w)``, the Global Perceptron's ``(nh, nw, C)`` instead of ``(C, nh, nw)``, so that
    a channels_last map is cut into partitions and reassembled by copies of contiguous runs of
    ``C/g`` channels; FC3 runs as one batched matmul over the groups. The training form runs
    FC3 as one batched matmul and the Local Perceptron as one conv + BN per kernel.
    ``docs/repmlp_block.md`` and ``docs/performance.md`` say what was measured. Deploy state
    dicts of the channel-major layout (this class's ``_version`` 1, or no version: the
    official code's) are converted when loaded.

    Sizes that are not multiples of the partition: the input is zero-padded at the bottom
    and right up to the next multiple of ``(h, w)``, processed as a padded map, and the output
    is cropped back to ``H x W``. The padded pixels count (as zeros) in the Global
    Perceptron's averages and are seen by FC3 and the convs; both forms do exactly this, so
    conversion stays exact. See ``docs/repmlp_block.md``.

    Args:
        in_channels (int): input channels ``C``.
        out_channels (int): output channels ``O`` (may differ from ``C``).
        in_size (int | tuple[int, int]): input size ``(H, W)``; inputs must have this size
            (FC1 and FC2 are sized for its number of partitions).
        partition_size (int | tuple[int, int]): partition size ``(h, w)``, at most the input.
        groups (int): groups ``g`` of FC3 and of the Local Perceptron's convs. Defaults to 1.
        local_kernels (Sequence[int | tuple[int, int]]): kernel sizes of the Local
            Perceptron, odd and at most the partition, square (``3``) or not (``(1, 3)``);
            ``()`` builds no Local Perceptron (the paper's ablation B). Defaults to
            ``(1, 3, 5)``.
        fc1_fc2_reduction (int): ratio of FC1's input size to its output size; must divide
            ``C*(H/h)*(W/w)``. Defaults to 1.
        with_global (bool): build the Global Perceptron (the paper's ablation C sets False).
            Defaults to True.
        norm_cfg (dict): config of the norm layers. Defaults to ``dict(type='BN')``.
        larger_input (str): what an input of another size than ``in_size`` does:
            ``'error'`` (a clear error: FC1 and FC2 are sized for ``in_size``'s partitions) or
            ``'windows'`` (the map runs as independent windows of ``in_size``, the last row and
            column of windows zero-padded, the output cropped back: e.g. whole-image
            segmentation at 1024x2048 with blocks built for 713x713 crops). Both forms do the
            same, so conversion stays exact. Defaults to 'error'.
        deploy (bool): build the deploy form directly. Defaults to False.
        init_cfg (dict, optional): initialization config. Defaults to None.
    """

    # 2: the deploy form's FCs are partition-major (1: channel-major).
    _version = 2

    def __init__(self,
                 in_channels,
                 out_channels,
                 in_size,
                 partition_size,
                 groups=1,
                 local_kernels=(1, 3, 5),
                 fc1_fc2_reduction=1,
                 with_global=True,
                 norm_cfg=dict(type='BN'),  # noqa: B006 (OpenMMLab style; never mutated)
                 larger_input='error',
                 deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        owner = type(self).__name__
        self.in_channels = check_int(in_channels, 'in_channels', owner)
        self.out_channels = check_int(out_channels, 'out_channels', owner)
        self.in_size = check_pair(in_size, 'in_size', owner)
        self.partition_size = check_pair(partition_size, 'partition_size', owner)
        self.groups = check_int(groups, 'groups', owner)
        self.local_kernels = self._parse_kernels(local_kernels, owner)
        self.fc1_fc2_reduction = check_int(fc1_fc2_reduction, 'fc1_fc2_reduction', owner)
        with_global = check_bool(with_global, 'with_global', owner)
        self.larger_input = check_choice(larger_input, 'larger_input', owner, LARGER_INPUTS)
        norm_cfg = check_norm_cfg(norm_cfg, owner)
        self.deploy = deploy = check_bool(deploy, 'deploy', owner)
        self._check_config()

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
                               bias=deploy)
        if not deploy:
            self.fc3_bn = build_norm_layer(_as_1d_norm(norm_cfg), out_channels * num_pixels)[1]
            self.local_perceptron = LocalPerceptron({
                f'conv{kh}x{kw}': ConvBN(in_channels, out_channels, (kh, kw),
                                         padding=(kh // 2, kw // 2), groups=groups,
                                         norm_cfg=norm_cfg)
                for kh, kw in self.local_kernels
            })

    @staticmethod
    def _parse_kernels(local_kernels, owner):
        if not isinstance(local_kernels, (list, tuple)):
            raise TypeError(f'{owner}: local_kernels must be a list of odd kernel sizes (ints '
                            f'or (kh, kw) pairs), () for none, got {local_kernels!r}')
        kernels = [check_pair(k, 'local_kernels', owner) for k in local_kernels]
        duplicates = {k for k in kernels if kernels.count(k) > 1}
        if duplicates:
            raise ValueError(f'{owner}: local_kernels lists {sorted(duplicates)} more than '
                             'once; list each kernel size once')
        return tuple(sorted(kernels))

    def _check_config(self):
        (H, W), (h, w), g = self.in_size, self.partition_size, self.groups
        if self.in_channels % g or self.out_channels % g:
            raise ValueError(f'RepMLPBlock: in_channels={self.in_channels} and out_channels='
                             f'{self.out_channels} must both be divisible by groups={g}')
        if h > H or w > W:
            raise ValueError(f'RepMLPBlock: partition_size {(h, w)} is larger than in_size '
                             f'{(H, W)}; use a partition at most as large as the input')
        for kh, kw in self.local_kernels:
            if kh % 2 == 0 or kw % 2 == 0:
                raise ValueError(f'RepMLPBlock: local_kernels entry {(kh, kw)} must have odd '
                                 'sizes (it is centred on each pixel)')
            if kh > h or kw > w:
                raise ValueError(f'RepMLPBlock: local_kernels entry {(kh, kw)} is larger than '
                                 f'the partition {(h, w)}; drop it or enlarge the partition')

    # ----------------------------------------------------------------- forward
    def forward(self, x):
        """``(N, C, H, W)`` -> ``(N, O, H, W)``."""
        return self._forward(x)

    def forward_with_fcs(self, x, fc1, fc2, fc3):
        """The deploy form's computation on ``x`` with the given FC parameters instead of the
        block's own: the block's function when they are its deploy ones
        (:meth:`get_deploy_fcs`), differentiable in them.

        Args:
            x (Tensor): the input, as for :meth:`forward`.
            fc1, fc2 (tuple[Tensor, Tensor] | None): FC1's and FC2's ``(weight, bias)`` in the
                deploy form's layout; None without a Global Perceptron.
            fc3 (tuple[Tensor, Tensor]): FC3's ``(weight, bias)`` in the deploy form's layout,
                ``(O*h*w, C*h*w // g)`` partition-major.
        """
        return self._forward(x, (fc1, fc2, fc3))

    def _forward(self, x, fcs=None):
        if self._runs_as_windows(x):
            return self._forward_windows(x, fcs)
        self._check_input(x)
        return self._forward_map(x, fcs)

    def _runs_as_windows(self, x):
        return (self.larger_input == 'windows' and x.dim() == 4
                and x.shape[1] == self.in_channels and tuple(x.shape[2:]) != self.in_size)

    def _check_input(self, x):
        expected = (self.in_channels, *self.in_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f'{type(self).__name__} was built for inputs (N, C, H, W) = (N, '
                f'{", ".join(map(str, expected))}) but got {tuple(x.shape)}; set in_channels '
                "and in_size to match the input, or pass larger_input='windows' to run other "
                'sizes as windows of in_size')

    def _forward_windows(self, x, fcs=None):
        """Any ``(N, C, H, W)`` as independent windows of ``in_size``: the map is zero-padded at
        the bottom and right to whole windows, the windows go through the block as a batch,
        and the output is reassembled and cropped back to ``H x W``."""
        N, C, H, W = x.shape
        (wh, ww), out_c = self.in_size, self.out_channels
        nh, nw = math.ceil(H / wh), math.ceil(W / ww)
        x = F.pad(x, (0, nw * ww - W, 0, nh * wh - H))
        windows = x.reshape(N, C, nh, wh, nw, ww).permute(0, 2, 4, 1, 3, 5)
        out = self._forward_map(windows.reshape(N * nh * nw, C, wh, ww), fcs)
        out = out.reshape(N, nh, nw, out_c, wh, ww).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(N, out_c, nh * wh, nw * ww)[:, :, :H, :W]

    def _forward_map(self, x, fcs=None):
        """One map of ``in_size``; ``fcs``: see :meth:`forward_with_fcs`."""
        if self.deploy or fcs is not None:
            return self._deploy_forward(x, fcs)
        N = x.shape[0]
        partitions = self._partition(x)
        num_partitions, C, h, w = partitions.shape
        flat = partitions.reshape(num_partitions, C * h * w)
        out = self.fc3_bn(self.fc3(flat))
        if self.local_kernels:
            out = out + self.local_perceptron(partitions).reshape_as(out)
        return self._unpartition(out.t(), N, _is_channels_last(x))

    def _partition(self, x):
        """``(N, C, H, W)`` -> ``(N*nh*nw, C, h, w)``, the Global Perceptron's output added."""
        N, C = x.shape[:2]
        (h, w), (nh, nw) = self.partition_size, self.num_parts
        x = self._pad(x)
        partitions = x.reshape(N, C, nh, h, nw, w).permute(0, 2, 4, 1, 3, 5)
        # One copy into partition order (from NCHW or channels_last alike), then the add in
        # place: a broadcast add would allocate its result in the input's order and need a
        # second copy.
        partitions = partitions.clone(memory_format=torch.contiguous_format)
        if self.with_global:
            per_partition = self._global_perceptron(x).reshape(N, C, nh, nw)
            partitions += per_partition.permute(0, 2, 3, 1).reshape(N, nh, nw, C, 1, 1)
        return partitions.reshape(N * nh * nw, C, h, w)

    def _pad(self, x):
        """The map zero-padded at the bottom and right to whole partitions."""
        (H, W), (Hp, Wp) = self.in_size, self.padded_size
        return x if (H, W) == (Hp, Wp) else F.pad(x, (0, Wp - W, 0, Hp - H))

    def _unpartition(self, out, N, channels_last=False):
        """FC3's output, features-first ``(O*h*w, N*nh*nw)`` -> ``(N, O, H, W)``.

        The result is channels_last when ``channels_last``, so that a model converted with
        ``model.to(memory_format=torch.channels_last)`` keeps that format through the block.
        """
        (h, w), (nh, nw) = self.partition_size, self.num_parts
        out_c = self.out_channels
        out = out.reshape(out_c, h, w, N, nh, nw)
        # ``contiguous`` copies only where the reshape could return a view (one partition).
        if channels_last:
            out = out.permute(3, 4, 1, 5, 2, 0).reshape(N, nh * h, nw * w, out_c)
            out = out.contiguous().permute(0, 3, 1, 2)
        else:
            out = out.permute(3, 0, 4, 1, 5, 2).reshape(N, out_c, nh * h, nw * w).contiguous()
        return self._crop(out)

    def _crop(self, out):
        (H, W) = self.in_size
        return out if (H, W) == self.padded_size else out[:, :, :H, :W]

    def _global_perceptron(self, x):
        """The training form's Global Perceptron: the (padded) map ``(N, C, nh*h, nw*w)`` ->
        ``(N, C*nh*nw)``, channel-major."""
        pooled = self.global_bn(F.avg_pool2d(x, self.partition_size))
        return self.fc2(F.relu(self.fc1(pooled.flatten(1))))

    def _deploy_forward(self, x, fcs=None):
        """The deploy form on one map, its FCs partition-major (``fcs``: see
        :meth:`forward_with_fcs`; the block's own FCs when None).

        The map is copied once into partition-major order ``(g, N, nh, nw, h, w, C/g)`` (from
        channels_last: runs of ``C/g`` channels), the Global Perceptron's per-partition vector
        added in place; FC3 maps each group's ``(N*nh*nw, h*w*C/g)`` rows in one batched
        matmul; one copy reassembles ``(N, O, H, W)`` in the input's memory format.
        """
        fc1, fc2, fc3 = self._deploy_layers(fcs)
        N, C = x.shape[:2]
        (h, w), (nh, nw), g = self.partition_size, self.num_parts, self.groups
        channels_last = _is_channels_last(x)
        x = self._pad(x)
        pixels = x.permute(0, 2, 3, 1).reshape(N, nh, h, nw, w, g, C // g)
        parts = pixels.permute(5, 0, 1, 3, 2, 4, 6).clone(memory_format=torch.contiguous_format)
        if self.with_global:
            pooled = F.avg_pool2d(x, self.partition_size).permute(0, 2, 3, 1).reshape(N, -1)
            per_partition = fc2(F.relu(fc1(pooled))).reshape(N, nh, nw, 1, 1, g, C // g)
            parts += per_partition.permute(5, 0, 1, 2, 3, 4, 6)
        out = fc3(parts.reshape(g, N * nh * nw, h * w * C // g))
        out = out.reshape(g, N, nh, nw, h, w, self.out_channels // g)
        if channels_last:
            out = out.permute(1, 2, 4, 3, 5, 0, 6).reshape(N, nh * h, nw * w, -1)
            out = out.permute(0, 3, 1, 2)
        else:
            out = out.permute(1, 0, 6, 2, 4, 3, 5).reshape(N, -1, nh * h, nw * w)
        return self._crop(out)

    def _deploy_layers(self, fcs=None):
        """FC1, FC2 and FC3 of :meth:`_deploy_forward` as callables: the block's own modules
        (so that their calls keep the modules' names), or the given parameters'."""
        if fcs is None:
            fc1, fc2 = (self.fc1, self.fc2) if self.with_global else (None, None)
            return fc1, fc2, self.fc3.grouped
        fc1, fc2, (fc3_weight, fc3_bias) = fcs
        layers = [None, None] if fc1 is None else [
            functools.partial(F.linear, weight=weight, bias=bias) for weight, bias in (fc1, fc2)
        ]
        return (*layers, functools.partial(grouped_linear, weight=fc3_weight, bias=fc3_bias))

    @property
    def largest_kernel(self):
        """``(kh, kw)`` covering every Local Perceptron kernel; None without one."""
        if not self.local_kernels:
            return None
        return (max(k[0] for k in self.local_kernels), max(k[1] for k in self.local_kernels))

    # ----------------------------------------------------------- re-parameterization
    def get_equivalent_fc1_fc3_params(self):
        """The deploy form's FC1 and FC3 parameters in the training form's channel-major
        layout (the paper's; see :func:`~mmrepmlp.reparam.conv_to_fc`).

        Uses the BN running statistics. Differentiable. In deploy form, the deploy FCs
        reordered back to channel-major.

        Returns:
            tuple: ``(fc1_weight, fc1_bias, fc3_weight, fc3_bias)``; the FC1 entries are
            ``None`` without a Global Perceptron. ``fc3_weight`` is ``(O*h*w, C*h*w // g)``.
        """
        if self.deploy:
            fc3 = fc3_to_partition_major(self.fc3.weight, self.fc3.bias, *self._fc3_layout(),
                                         inverse=True)
            if not self.with_global:
                return (None, None, *fc3)
            fc1_weight = global_fcs_to_partition_major(
                self.fc1.weight, self.fc2.weight, self.fc2.bias, self.in_channels,
                self.num_parts, inverse=True)[0]
            return (fc1_weight, self.fc1.bias, *fc3)
        # A fresh tensor (the BN-scaled FC3 weight), so the local kernels can be added to it
        # in place, tap by tap, without building their dense FC form.
        fc3_weight, fc3_bias = fuse_conv_bn(self.fc3, self.fc3_bn)
        if self.local_kernels:
            # Conv -> FC is linear in the kernel: sum the padded kernels, convert once.
            kmax = self.largest_kernel
            fused = [b.fused_weight_bias() for b in self.local_perceptron.values()]
            kernel = sum(pad_kernel(k, kmax) for k, _ in fused)
            bias = sum(b for _, b in fused)
            fc3_weight = add_conv_to_fc_(fc3_weight, kernel, self.partition_size)
            h, w = self.partition_size
            fc3_bias = fc3_bias + bias.repeat_interleave(h * w)
        return (*self._equivalent_fc1(), fc3_weight, fc3_bias)

    def get_deploy_fcs(self):
        """The deploy form's FC1, FC2 and FC3, each ``(weight, bias)``, in its partition-major
        layout: what :meth:`forward_with_fcs` takes and :meth:`switch_to_deploy` stores.

        Computed from the training form (BN running statistics, differentiable), or the
        deploy form's own parameters.

        Returns:
            tuple: ``(fc1, fc2, fc3)``; ``fc1`` and ``fc2`` are None without a Global
            Perceptron.
        """
        if self.deploy:
            fc3 = (self.fc3.weight, self.fc3.bias)
            if not self.with_global:
                return None, None, fc3
            return (self.fc1.weight, self.fc1.bias), (self.fc2.weight, self.fc2.bias), fc3
        fc1_weight, fc1_bias, fc3_weight, fc3_bias = self.get_equivalent_fc1_fc3_params()
        fc3 = fc3_to_partition_major(fc3_weight, fc3_bias, *self._fc3_layout())
        if not self.with_global:
            return None, None, fc3
        fc1_weight, fc2_weight, fc2_bias = global_fcs_to_partition_major(
            fc1_weight, self.fc2.weight, self.fc2.bias, self.in_channels, self.num_parts)
        return (fc1_weight, fc1_bias), (fc2_weight, fc2_bias), fc3

    def _fc3_layout(self):
        """The arguments of :func:`~mmrepmlp.reparam.fc3_to_partition_major` after the
        weight and bias."""
        return self.in_channels, self.out_channels, self.partition_size, self.groups

    def _equivalent_fc1(self):
        """FC1 with the Global Perceptron's BN absorbed, ``(None, None)`` without one."""
        if not self.with_global:
            return None, None
        return absorb_bn_module_into_fc(self.fc1, self.global_bn,
                                        repeats=self.num_parts[0] * self.num_parts[1])

    def switch_to_deploy(self):
        """Merge every BN and the Local Perceptron into FC1 and FC3 and order the FCs
        partition-major (idempotent).

        Uses the BN running statistics, so it is safe on a model in train mode.
        """
        if self.deploy:
            return
        with torch.no_grad():
            fc1, fc2, (fc3_weight, fc3_bias) = self.get_deploy_fcs()
        self.fc3 = GroupwiseFC.from_weight(fc3_weight, fc3_bias, self.fc3.groups)
        if self.with_global:
            for layer, (weight, bias) in ((self.fc1, fc1), (self.fc2, fc2)):
                layer.weight.data.copy_(weight)
                layer.bias.data.copy_(bias)
            del self.global_bn
        del self.fc3_bn, self.local_perceptron
        self.deploy = True

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        # A deploy state dict of the channel-major layout (version 1, or no version) is
        # reordered partition-major first.
        version = local_metadata.get('version')
        if self.deploy and (version is None or version < 2) and (
                prefix + 'fc3.bias') in state_dict:
            _channel_major_to_partition_major(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)


def _channel_major_to_partition_major(block, state_dict, prefix):
    """Reorder the deploy FCs of ``block``'s entries in ``state_dict`` partition-major, in
    place (as :meth:`RepMLPBlock.switch_to_deploy` orders them)."""
    keys = [prefix + name for name in ('fc3.weight', 'fc3.bias')]
    state_dict.update(zip(keys, fc3_to_partition_major(*(state_dict[k] for k in keys),
                                                       *block._fc3_layout())))
    keys = [prefix + name for name in ('fc1.weight', 'fc2.weight', 'fc2.bias')]
    if block.with_global and all(k in state_dict for k in keys):
        state_dict.update(zip(keys, global_fcs_to_partition_major(
            *(state_dict[k] for k in keys), block.in_channels, block.num_parts)))


def _is_channels_last(x):
    """Whether a 4-D ``x`` is laid out channels_last (and not also contiguous, as a map with
    one pixel or one channel is)."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


@MODELS.register_module()
class RepMLP1d(RepMLPBlock):
    """RepMLP for sequences ``(N, C, L)``: the same three perceptrons over length partitions.

    Implemented as :class:`RepMLPBlock` on ``(N, C, 1, L)`` with partitions ``1 x l`` and
    kernels ``1 x k``, so conversion is exactly the 2-D one. A length that is not a multiple
    of ``l`` is zero-padded at the end and the output cropped back, as in 2-D.

    Args:
        in_channels (int): input channels ``C``.
        out_channels (int): output channels ``O``.
        in_length (int): input length ``L``.
        partition_length (int): partition length ``l``, at most ``L``.
        local_kernels (Sequence[int]): odd kernel sizes ``<= l``. Defaults to ``(1, 3, 5)``.
        **kwargs: the other arguments of :class:`RepMLPBlock`.
    """

    def __init__(self, in_channels, out_channels, in_length, partition_length,
                 local_kernels=(1, 3, 5), **kwargs):
        owner = type(self).__name__
        in_length = check_int(in_length, 'in_length', owner)
        partition_length = check_int(partition_length, 'partition_length', owner)
        local_kernels = check_int_sequence(local_kernels, 'local_kernels', owner)
        super().__init__(in_channels, out_channels, (1, in_length), (1, partition_length),
                         local_kernels=[(1, k) for k in local_kernels], **kwargs)

    def _forward(self, x, fcs=None):
        """``(N, C, L)`` -> ``(N, O, L)``, for :meth:`forward` and :meth:`forward_with_fcs`."""
        expected = (self.in_channels, self.in_size[1])
        other_length = self.larger_input == 'windows' and x.dim() == 3 and (
            x.shape[1] == self.in_channels)
        if not other_length and (x.dim() != 3 or tuple(x.shape[1:]) != expected):
            raise ValueError(f'RepMLP1d was built for inputs (N, C, L) = (N, {expected[0]}, '
                             f'{expected[1]}) but got {tuple(x.shape)}; set in_channels and '
                             "in_length to match the input, or pass larger_input='windows'")
        return super()._forward(x.unsqueeze(2), fcs).squeeze(2)
