"""The re-parameterization math of RepMLP, as pure and differentiable tensor functions.

Every block of the package calls these; none of them touches a module's state. They run on
the tensors' own device and dtype (float16, bfloat16, float32, float64).

Notation: a conv kernel is ``(O, C // g, kh, kw)`` (or ``(O, C // g, k)`` in 1-D); an FC
kernel over a partition of ``h x w`` pixels is ``(O*h*w, C*h*w // g)``, the weight of a
groupwise FC with ``g`` groups whose inputs and outputs are flattened channel-major
(``c*h*w + i*w + j``), as in the paper.
"""
import torch
import torch.nn.functional as F


def fuse_bn(weight, bias, running_mean, running_var, gamma, beta, eps):
    """Fold an inference-mode BN that follows a conv or FC into that layer's weight and bias.

    ``BN(W x + b) = W' x + b'`` with ``W' = W * gamma / std`` (per output channel, dim 0) and
    ``b' = beta + (b - mean) * gamma / std``. ``bias`` may be ``None`` (a layer without bias).

    Returns:
        tuple[Tensor, Tensor]: the fused weight and bias.
    """
    scale = gamma / torch.sqrt(running_var + eps)
    fused_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    if bias is None:
        bias = torch.zeros_like(running_mean)
    fused_bias = beta + (bias - running_mean) * scale
    return fused_weight, fused_bias


def fuse_conv_bn(conv, bn):
    """:func:`fuse_bn` for a conv (or ``nn.Linear``) module followed by a BN module."""
    return fuse_bn(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.weight,
                   bn.bias, bn.eps)


def pad_kernel(kernel, size):
    """Zero-pad a conv kernel around its centre to a larger spatial size.

    Args:
        kernel (Tensor): ``(O, C, kh, kw)`` (or ``(O, C, k)``), odd sizes.
        size (int | tuple[int]): the target spatial size, odd and not smaller than the kernel.
    """
    spatial = tuple(kernel.shape[2:])
    size = _as_tuple(size, len(spatial))
    pads = []
    for k, s in zip(reversed(spatial), reversed(size)):
        if s < k or (s - k) % 2:
            raise ValueError(f'cannot pad a kernel of size {spatial} to {size}: the target '
                             'must be at least as large and differ by an even amount')
        pads += [(s - k) // 2, (s - k) // 2]
    return F.pad(kernel, pads)


def conv_to_fc(kernel, bias, partition_size, groups=1):
    """Turn a (groupwise) conv over an ``h x w`` partition into the equivalent groupwise FC.

    The conv uses stride 1 and "same" zero padding ``k // 2`` inside the partition. Following
    the paper (Algorithm 1), the FC kernel is the conv's response to an identity matrix
    reshaped into ``C*h*w // g`` one-hot feature maps, so it is exact and differentiable.

    Args:
        kernel (Tensor): ``(O, C // g, kh, kw)``, or ``(O, C // g, k)`` for 1-D.
        bias (Tensor | None): ``(O,)``.
        partition_size (int | tuple[int]): ``(h, w)`` (or ``l`` for 1-D).
        groups (int): the conv's groups ``g``.

    Returns:
        tuple[Tensor, Tensor | None]: FC weight ``(O*h*w, C*h*w // g)`` and bias ``(O*h*w,)``.
    """
    spatial_dims = kernel.dim() - 2
    size = _as_tuple(partition_size, spatial_dims)
    out_channels, in_per_group = kernel.shape[:2]
    num_pixels = 1
    for s in size:
        num_pixels *= s
    fc_in = in_per_group * num_pixels
    # Row j of the identity is the one-hot input at flat position j within every group.
    identity = torch.eye(fc_in, dtype=kernel.dtype, device=kernel.device)
    identity = identity.repeat(1, groups).reshape(fc_in, in_per_group * groups, *size)
    conv = F.conv1d if spatial_dims == 1 else F.conv2d
    padding = tuple(k // 2 for k in kernel.shape[2:])
    response = conv(identity, kernel, padding=padding, groups=groups)
    fc_weight = response.reshape(fc_in, out_channels * num_pixels).t()
    fc_bias = None if bias is None else bias.repeat_interleave(num_pixels)
    return fc_weight, fc_bias


def absorb_bn_into_fc(fc_weight, fc_bias, running_mean, running_var, gamma, beta, eps,
                      repeats=1):
    """Absorb a BN that comes *before* an FC (the Global Perceptron's BN) into that FC.

    The FC's input is the BN output flattened channel-major, each channel repeated
    ``repeats`` times (the partitions per channel): the paper's Algorithm 2.

    Returns:
        tuple[Tensor, Tensor]: the FC's new weight and bias.
    """
    scale = gamma / torch.sqrt(running_var + eps)
    shift = beta - running_mean * scale
    scale = scale.repeat_interleave(repeats)
    shift = shift.repeat_interleave(repeats)
    new_weight = fc_weight * scale.unsqueeze(0)
    new_bias = fc_weight @ shift
    if fc_bias is not None:
        new_bias = new_bias + fc_bias
    return new_weight, new_bias


def _as_tuple(value, length):
    if isinstance(value, int):
        return (value, ) * length
    value = tuple(int(v) for v in value)
    if len(value) != length:
        raise ValueError(f'expected {length} sizes, got {value}')
    return value
