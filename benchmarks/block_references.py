"""Reference implementations of two RepMLP block computations, for the tests that check the
block's fast path equal to them and for ``block_speed.py``, which times both.

- :class:`ConvGroupwiseFC`: the groupwise FC3 as the official grouped 1x1 conv (the block
  computes it as one batched matmul);
- :class:`FusedLocalPerceptron`: the Local Perceptron as one conv with the kernels padded to
  the largest and stacked on the output channels, normalized by one batch-norm call that
  updates every branch's running statistics (the block runs one conv + BN per branch).

:func:`use_conv_fc3` and :func:`use_fused_local_perceptron` put them into a block in place of
its own modules, with the same parameters, buffers and state_dict keys. docs/repmlp_block.md
says what was measured and why the block keeps the path it keeps.
"""
import torch
import torch.nn.functional as F

from mmrepmlp.models.blocks import LocalPerceptron
from mmrepmlp.models.layers import GroupwiseFC
from mmrepmlp.reparam import pad_kernel


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
