import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def grouped_linear(x, weight, bias=None):
    """A groupwise FC on inputs laid out group by group: ``(g, N, in // g)`` with ``weight``
    ``(out, in // g)`` and ``bias`` ``(out,)`` -> ``(g, N, out // g)``."""
    groups = x.shape[0]
    weight = weight.reshape(groups, -1, weight.shape[1]).transpose(1, 2)
    if bias is None:
        return torch.bmm(x, weight)
    return torch.baddbmm(bias.reshape(groups, 1, -1), x, weight)


class GroupwiseFC(nn.Module):
    """A fully-connected layer split into ``groups`` independent groups.

    Group ``i`` maps input features ``[i*in/g, (i+1)*in/g)`` to output features
    ``[i*out/g, (i+1)*out/g)``. Equal to a grouped 1x1 conv on ``(N, in_features, 1, 1)``
    (the official RepMLP form), computed as one batched matmul, the faster of the two
    (``docs/repmlp_block.md``). The weight has the grouped-conv layout
    ``(out_features, in_features // groups)``, so checkpoints are interchangeable with it.

    Args:
        in_features (int): input features, divisible by ``groups``.
        out_features (int): output features, divisible by ``groups``.
        groups (int): number of groups. Defaults to 1.
        bias (bool): add a learnable bias. Defaults to True.
        device (torch.device, optional): where to create the parameters.
        dtype (torch.dtype, optional): the parameters' dtype.
    """

    def __init__(self, in_features, out_features, groups=1, bias=True, device=None,
                 dtype=None):
        super().__init__()
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f'GroupwiseFC: groups must be a positive int, got {groups!r}')
        if in_features % groups or out_features % groups:
            raise ValueError(f'GroupwiseFC: in_features={in_features} and out_features='
                             f'{out_features} must both be divisible by groups={groups}')
        self.in_features, self.out_features = in_features, out_features
        self.groups = groups
        factory = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.empty(out_features, in_features // groups, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    @classmethod
    def from_weight(cls, weight, bias=None, groups=1):
        """A layer holding ``weight`` ``(out, in // groups)`` and ``bias`` as its parameters.

        Nothing is initialized (the layer is built on the meta device first), which matters
        for the multi-million-entry FCs that re-parameterization produces.
        """
        layer = cls(weight.shape[1] * groups, weight.shape[0], groups, bias=bias is not None,
                    device='meta')
        layer.weight = nn.Parameter(weight)
        if bias is not None:
            layer.bias = nn.Parameter(bias)
        return layer

    def reset_parameters(self):
        # The same initialization as the equivalent grouped 1x1 conv.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1])
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        """``x``: ``(N, in_features)`` -> ``(N, out_features)``."""
        self._check_input(x)
        if self.groups == 1:
            return F.linear(x, self.weight, self.bias)
        return self._grouped_matmul(x).t().contiguous()

    def features_first(self, x):
        """``x``: ``(N, in_features)`` -> ``(out_features, N)``, the transposed output.

        The batched matmul produces this layout; a caller that rearranges the output anyway
        (an un-partitioning copy) saves the copy that :meth:`forward` makes to transpose it.
        """
        self._check_input(x)
        return self._grouped_matmul(x)

    def grouped(self, x):
        """``x``: ``(groups, N, in_features // groups)``, each group's inputs ->
        ``(groups, N, out_features // groups)``, each group's outputs.

        The layout of RepMLP's partition-major deploy form: one batched matmul, the bias added
        by the same BLAS call, no copy of inputs or outputs.
        """
        if x.dim() != 3 or x.shape[0] != self.groups or (
                x.shape[2] * self.groups != self.in_features):
            raise ValueError(f'GroupwiseFC.grouped expects inputs ({self.groups}, N, '
                             f'{self.in_features // self.groups}), got {tuple(x.shape)}')
        return grouped_linear(x, self.weight, self.bias)

    def _check_input(self, x):
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f'GroupwiseFC expects inputs (N, {self.in_features}), got '
                             f'{tuple(x.shape)}')

    def _grouped_matmul(self, x):
        """``(out_features, N)``: one batched matmul ``W_g @ x_g^T`` per group.

        Multiplying from the weight side makes the weight's gradient come out in the
        weight's own layout (no transposed copy of the largest tensor in backward), and the
        bias is added by the same BLAS call.
        """
        g, batch = self.groups, x.shape[0]
        weight = self.weight.reshape(g, self.out_features // g, self.in_features // g)
        inputs = x.reshape(batch, g, self.in_features // g).permute(1, 2, 0)
        if self.bias is None:
            out = torch.bmm(weight, inputs)
        else:
            out = torch.baddbmm(self.bias.reshape(g, -1, 1), weight, inputs)
        return out.reshape(self.out_features, batch)

    def extra_repr(self):
        return (f'in_features={self.in_features}, out_features={self.out_features}, '
                f'groups={self.groups}, bias={self.bias is not None}')
