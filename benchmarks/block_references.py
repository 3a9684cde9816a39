"""Reference implementations of RepMLP block computations, for the tests that check the
block's fast path equal to them and for ``block_speed.py`` and ``deploy_speed.py``, which time
them beside it.

- :class:`ConvGroupwiseFC`: the groupwise FC3 as the official grouped 1x1 conv (the block
  computes it as one batched matmul);
- :class:`FusedLocalPerceptron`: the Local Perceptron as one conv with the kernels padded to
  the largest and stacked on the output channels, normalized by one batch-norm call that
  updates every branch's running statistics (the block runs one conv + BN per branch);
- deploy forms in other layouts than the block's partition-major one (:data:`DEPLOY_LAYOUTS`):
  :class:`ChannelMajorDeploy`, the paper's ``(C, h, w)`` feature order, and
  :class:`ConvPartitionDeploy`, FC3 as a grouped conv whose kernel and stride are the
  partition, followed by a depth-to-space copy.

:func:`use_conv_fc3` and :func:`use_fused_local_perceptron` put the first two into a block in
place of its own modules, with the same parameters, buffers and state_dict keys;
:func:`use_deploy_layout` replaces every deploy RepMLP block of a model by a deploy form of
another layout computing the same function. docs/repmlp_block.md and docs/performance.md say
what was measured and why the block keeps the paths it keeps.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrepmlp.models.blocks import LocalPerceptron, RepMLPBlock
from mmrepmlp.models.layers import GroupwiseFC
from mmrepmlp.reparam import global_fcs_to_partition_major, pad_kernel


class ConvGroupwiseFC(GroupwiseFC):
    """A :class:`GroupwiseFC` computed as the grouped 1x1 conv it equals."""

    def forward(self, x):
        """``(N, in_features)`` -> ``(N, out_features)``."""
        out = F.conv2d(x.reshape(*x.shape, 1, 1), self.weight[..., None, None], self.bias,
                       groups=self.groups)
        return out.reshape(x.shape[0], self.out_features)

    def features_first(self, x):
        """``(N, in_features)`` -> ``(out_features, N)``."""
        return self(x).t()

    def grouped(self, x):
        """``(groups, N, in_features // groups)`` -> ``(groups, N, out_features // groups)``."""
        groups, batch = x.shape[:2]
        out = self(x.transpose(0, 1).reshape(batch, -1))
        return out.reshape(batch, groups, -1).transpose(0, 1)


def use_conv_fc3(block):
    """Compute ``block``'s FC3 (training or deploy form) as a grouped conv; returns the block.
    """
    fc3 = block.fc3
    block.fc3 = ConvGroupwiseFC.from_weight(fc3.weight, fc3.bias, fc3.groups)
    return block


class FusedLocalPerceptron(LocalPerceptron):
    """A :class:`LocalPerceptron` computed with one conv and one batch norm.

    The kernels are padded to the largest and stacked on the output channels in the order
    (conv group, branch, channel in group), so the stacked conv keeps the grouping and its
    output is normalized as it is, without per-branch slices.
    """

    def forward(self, x):
        branches = list(self.values())
        convs = [branch.conv for branch in branches]
        g, num_branches = convs[0].groups, len(branches)
        out_channels, in_per_group = convs[0].out_channels, convs[0].weight.shape[1]
        kmax = (max(c.weight.shape[2] for c in convs), max(c.weight.shape[3] for c in convs))
        weight = torch.stack([
            pad_kernel(c.weight, kmax).reshape(g, out_channels // g, in_per_group, *kmax)
            for c in convs
        ], dim=1).reshape(num_branches * out_channels, in_per_group, *kmax)
        stacked = F.conv2d(x, weight, padding=(kmax[0] // 2, kmax[1] // 2), groups=g)
        normed = stacked_batch_norm(stacked, [b.bn for b in branches], g)
        n, _, h, w = stacked.shape
        normed = normed.reshape(n, g, num_branches, out_channels // g, h, w)
        return normed.sum(2).reshape(n, out_channels, h, w)


def use_fused_local_perceptron(block):
    """Compute ``block``'s Local Perceptron with :class:`FusedLocalPerceptron`; returns the
    block.

    Raises:
        ValueError: the branches are normalized by another layer than plain batch norm.
    """
    norms = {type(branch.bn).__name__ for branch in block.local_perceptron.values()}
    if norms - {'BatchNorm2d'}:
        raise ValueError('the fused Local Perceptron normalizes the stacked branches with one '
                         f"plain batch norm, so it needs norm_cfg type 'BN'; got {sorted(norms)}")
    block.local_perceptron = FusedLocalPerceptron(block.local_perceptron)
    return block


def stacked_batch_norm(stacked, norms, groups):
    """Apply ``norms[i]`` to branch ``i``'s channels of a stacked conv output, in one call.

    ``stacked`` is ``(N, g * num_branches * O/g, h, w)`` in (group, branch, channel) order.
    Per-channel batch norm does not mix channels, so one ``F.batch_norm`` over the stacked
    channels, with every branch's parameters and statistics gathered in the same order,
    computes each branch's output exactly. The updated running statistics are written back
    and ``num_batches_tracked`` advanced, exactly as calling each norm would.
    """

    def gather(attr):
        return torch.stack([getattr(bn, attr).reshape(groups, -1) for bn in norms],
                           dim=1).reshape(-1)

    first = norms[0]
    training = first.training
    update_stats = training and first.track_running_stats
    momentum = first.momentum
    if update_stats:
        tracked = {int(bn.num_batches_tracked) for bn in norms}
        if momentum is None and len(tracked) > 1:
            raise RuntimeError('the fused Local Perceptron: the branch BNs have tracked '
                               f'different numbers of batches {sorted(tracked)} and '
                               'momentum=None; compute the branches one by one')
        for bn in norms:
            bn.num_batches_tracked.add_(1)
        if momentum is None:  # cumulative moving average, as in nn.BatchNorm
            momentum = 1.0 / float(first.num_batches_tracked)
    has_stats = first.running_mean is not None
    running_mean = gather('running_mean') if has_stats else None
    running_var = gather('running_var') if has_stats else None
    affine = first.affine
    out = F.batch_norm(stacked, running_mean, running_var,
                       gather('weight') if affine else None, gather('bias') if affine else None,
                       training or not has_stats, momentum or 0.0, first.eps)
    if update_stats:
        with torch.no_grad():
            per_branch = (len(norms), -1)
            means = running_mean.reshape(groups, *per_branch).transpose(0, 1)
            variances = running_var.reshape(groups, *per_branch).transpose(0, 1)
            for bn, mean, var in zip(norms, means, variances):
                bn.running_mean.copy_(mean.reshape(-1))
                bn.running_var.copy_(var.reshape(-1))
    return out


def channel_major_fcs(block):
    """A deploy RepMLP block's FC1, FC2 and FC3 ``(weight, bias)`` in the paper's
    channel-major order (the official code's); FC1 and FC2 are None without a Global
    Perceptron. The block stores them partition-major."""
    fc1_weight, fc1_bias, fc3_weight, fc3_bias = block.get_equivalent_fc1_fc3_params()
    if not block.with_global:
        return None, None, (fc3_weight, fc3_bias)
    _, fc2_weight, fc2_bias = global_fcs_to_partition_major(
        block.fc1.weight, block.fc2.weight, block.fc2.bias, block.in_channels, block.num_parts,
        inverse=True)
    return (fc1_weight, fc1_bias), (fc2_weight, fc2_bias), (fc3_weight, fc3_bias)


class OtherLayoutDeploy(nn.Module):
    """A deploy RepMLP block's function computed in another layout: the base of the deploy
    layout references. Holds the block's FCs as ``fc1``, ``fc2`` (``nn.Linear``) and ``fc3``
    (a :class:`GroupwiseFC`), so that ``quantize_int8`` quantizes them as the block's own;
    inputs of the block's ``in_size`` only."""

    def __init__(self, block):
        super().__init__()
        if not block.deploy:
            raise ValueError('the deploy layout references take a block in deploy form')
        self.in_channels, self.out_channels = block.in_channels, block.out_channels
        self.in_size, self.padded_size = block.in_size, block.padded_size
        self.partition_size, self.num_parts = block.partition_size, block.num_parts
        self.groups, self.with_global = block.groups, block.with_global
        fc1, fc2, (fc3_weight, fc3_bias) = channel_major_fcs(block)
        self.fc3 = self.make_fc3(fc3_weight.detach().clone(), fc3_bias.detach().clone())
        if self.with_global:
            self.fc1, self.fc2 = _linear(*fc1), _linear(*fc2)
        self.train(block.training)

    def make_fc3(self, weight, bias):
        """FC3 from its channel-major ``(weight, bias)``: a :class:`GroupwiseFC`."""
        return GroupwiseFC.from_weight(weight, bias, self.groups)

    def per_partition(self, x):
        """The Global Perceptron: the padded map -> ``(N, C, nh, nw)``, channel-major."""
        pooled = F.avg_pool2d(x, self.partition_size).flatten(1)
        return self.fc2(F.relu(self.fc1(pooled))).reshape(x.shape[0], -1, *self.num_parts)

    def crop(self, out):
        (H, W) = self.in_size
        return out if (H, W) == self.padded_size else out[:, :, :H, :W]

    def padded(self, x):
        (H, W), (Hp, Wp) = self.in_size, self.padded_size
        return x if (H, W) == (Hp, Wp) else F.pad(x, (0, Wp - W, 0, Hp - H))


def _linear(weight, bias):
    layer = nn.Linear(weight.shape[1], weight.shape[0], device='meta')
    layer.weight, layer.bias = nn.Parameter(weight.detach().clone()), nn.Parameter(
        bias.detach().clone())
    return layer


def _channels_last(x):
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class ChannelMajorDeploy(OtherLayoutDeploy):
    """The deploy form in the paper's channel-major order (FC3 features ``(C, h, w)``, the
    Global Perceptron's ``(C, nh, nw)``): one copy into ``(N*nh*nw, C, h, w)`` with the
    Global Perceptron added in place, FC3 features-first, one un-partitioning copy. From a
    channels_last map both copies move single elements."""

    def forward(self, x):
        N, C = x.shape[:2]
        (h, w), (nh, nw), g = self.partition_size, self.num_parts, self.groups
        channels_last = _channels_last(x)
        x = self.padded(x)
        parts = x.reshape(N, C, nh, h, nw, w).permute(0, 2, 4, 1, 3, 5)
        parts = parts.clone(memory_format=torch.contiguous_format)
        if self.with_global:
            parts += self.per_partition(x).permute(0, 2, 3, 1).reshape(N, nh, nw, C, 1, 1)
        rows = parts.reshape(N * nh * nw, g, C * h * w // g).transpose(0, 1)
        out = self.fc3.grouped(rows).transpose(1, 2).reshape(self.out_channels, h, w, N, nh, nw)
        if channels_last:
            out = out.permute(3, 4, 1, 5, 2, 0).reshape(N, nh * h, nw * w, -1)
            return self.crop(out.contiguous().permute(0, 3, 1, 2))
        return self.crop(out.permute(3, 0, 4, 1, 5, 2).reshape(N, -1, nh * h, nw * w))


class ConvPartitionDeploy(OtherLayoutDeploy):
    """FC3 as a grouped conv whose kernel and stride are the partition, its output channels
    ordered ``(g, h, w, O/g)``, then one depth-to-space copy (runs of ``O/g`` channels from
    channels_last); the Global Perceptron is added to the map before the conv."""

    def make_fc3(self, weight, bias):
        """FC3 as an ``nn.Conv2d`` of kernel = stride = partition, ``g`` groups."""
        (h, w), g = self.partition_size, self.groups
        out_per_group = self.out_channels // g
        weight = weight.reshape(g, out_per_group, h * w, -1).transpose(1, 2)
        bias = bias.reshape(g, out_per_group, h * w).transpose(1, 2).reshape(-1)
        conv = nn.Conv2d(self.in_channels, bias.numel(), (h, w), (h, w), groups=g,
                         device='meta')
        conv.weight = nn.Parameter(weight.reshape(bias.numel(), -1, h, w).contiguous())
        conv.bias = nn.Parameter(bias.contiguous())
        return conv

    def forward(self, x):
        N, C = x.shape[:2]
        (h, w), (nh, nw), g = self.partition_size, self.num_parts, self.groups
        channels_last = _channels_last(x)
        x = self.padded(x)
        if self.with_global:
            spread = self.per_partition(x).reshape(N, C, nh, 1, nw, 1)
            x = (x.reshape(N, C, nh, h, nw, w) + spread).reshape(N, C, nh * h, nw * w)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        out = self.fc3(x).permute(0, 2, 3, 1).reshape(N, nh, nw, g, h, w, -1)
        if channels_last:
            out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(N, nh * h, nw * w, -1)
            return self.crop(out.permute(0, 3, 1, 2))
        return self.crop(out.permute(0, 3, 6, 1, 4, 2, 5).reshape(N, -1, nh * h, nw * w))


# name -> the deploy form of that layout made from a deploy block (the block itself: its own).
DEPLOY_LAYOUTS = {
    'partition-major': lambda block: block,
    'channel-major': ChannelMajorDeploy,
    'conv-partition': ConvPartitionDeploy,
}


def use_deploy_layout(model, layout):
    """Replace every deploy :class:`RepMLPBlock` of ``model`` (in place; not a
    ``RepMLP1d``) by its deploy form in ``layout`` (a :data:`DEPLOY_LAYOUTS` name); returns
    the model."""
    make = DEPLOY_LAYOUTS[layout]
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is RepMLPBlock and child.deploy:
                setattr(module, name, make(child))
    return model


def deploy_layers(model):
    """``{name: module}`` of every RepMLP layer of ``model``: its :class:`RepMLPBlock` (not
    ``RepMLP1d``) and deploy layout references."""
    return {name: module for name, module in model.named_modules()
            if type(module) is RepMLPBlock or isinstance(module, OtherLayoutDeploy)}
