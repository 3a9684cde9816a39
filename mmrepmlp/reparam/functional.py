"""The re-parameterization math of RepMLP, as pure and differentiable tensor functions.

Every block of the package calls these; none of them touches a module's state. They run on
the tensors' own device and dtype (float16, bfloat16, float32, float64): nothing is created
in a fixed dtype, so a float64 model converts in float64.

Notation: a conv kernel is ``(O, C // g, kh, kw)`` (or ``(O, C // g, k)`` in 1-D); an FC
kernel over a partition of ``h x w`` pixels is ``(O*h*w, C*h*w // g)``, the weight of a
groupwise FC with ``g`` groups whose inputs and outputs are flattened channel-major
(``c*h*w + i*w + j``), as in the paper. The deploy form of a RepMLP block orders the same
features partition-major (:func:`fc3_to_partition_major`, :func:`global_fcs_to_partition_major`).
"""
import torch
import torch.nn.functional as F


def fuse_bn(weight, bias, running_mean, running_var, gamma, beta, eps, repeats=1):
    """Fold an inference-mode BN that follows a conv or FC into that layer's weight and bias.

    ``BN(W x + b) = W' x + b'`` with ``W' = W * gamma / std`` (per output channel, dim 0) and
    ``b' = beta + (b - mean) * gamma / std``.

    Args:
        weight (Tensor): the layer's weight, output channels first (conv or FC).
        bias (Tensor | None): the layer's bias, ``None`` for a layer without one.
        running_mean, running_var (Tensor): the BN's statistics ``(O / repeats,)``.
        gamma, beta (Tensor | None): the BN's affine parameters, ``None`` when it has none.
        eps (float): the BN's epsilon.
        repeats (int): consecutive layer outputs per BN channel: RepMLPNet's FC3 has ``h*w``
            outputs per share-set, normalized by one BN channel. Defaults to 1.

    Returns:
        tuple[Tensor, Tensor]: the fused weight and bias.
    """
    if repeats != 1:
        running_mean, running_var, gamma, beta = (
            None if t is None else t.repeat_interleave(repeats)
            for t in (running_mean, running_var, gamma, beta))
    scale = torch.rsqrt(running_var + eps)
    if gamma is not None:
        scale = scale * gamma
    fused_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    centred_bias = -running_mean if bias is None else bias - running_mean
    fused_bias = centred_bias * scale
    if beta is not None:
        fused_bias = fused_bias + beta
    return fused_weight, fused_bias


def fuse_conv_bn(layer, bn):
    """:func:`fuse_bn` for a conv or ``nn.Linear`` module followed by a BN module.

    Covers conv + BN2d (or BN1d / BN3d) and FC + BN1d alike.
    """
    return fuse_bn(layer.weight, layer.bias, *_bn_inference_params(bn))


def pad_kernel(kernel, size):
    """Zero-pad a conv kernel around its centre to a larger spatial size.

    A conv with the padded kernel and padding ``size // 2`` equals the original conv with
    padding ``k // 2``: the added taps are zeros.

    Args:
        kernel (Tensor): ``(O, C, kh, kw)`` (or ``(O, C, k)``), odd sizes.
        size (int | tuple[int]): the target spatial size (``(sh, sw)`` may be non-square), odd
            and not smaller than the kernel.
    """
    spatial = tuple(kernel.shape[2:])
    size = _as_tuple(size, len(spatial))
    pads = []
    # F.pad takes (before, after) pairs starting from the last dimension.
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
    All groups see the same one-hot maps, so one ungrouped conv of the ``C // g``-channel
    identity with the ``(O, C // g, ...)`` kernel gives every group's response at once.

    Args:
        kernel (Tensor): ``(O, C // g, kh, kw)``, or ``(O, C // g, k)`` for 1-D; odd sizes.
        bias (Tensor | None): ``(O,)``.
        partition_size (int | tuple[int]): ``(h, w)`` (or ``l`` for 1-D).
        groups (int): the conv's groups ``g``; the FC has as many.

    Returns:
        tuple[Tensor, Tensor | None]: FC weight ``(O*h*w, C*h*w // g)`` and bias ``(O*h*w,)``
        (``None`` when ``bias`` is).
    """
    spatial_dims = kernel.dim() - 2
    if spatial_dims not in (1, 2):
        raise ValueError(f'conv_to_fc expects a 1-D or 2-D conv kernel, got shape '
                         f'{tuple(kernel.shape)}')
    size = _as_tuple(partition_size, spatial_dims)
    out_channels, in_per_group = kernel.shape[:2]
    if out_channels % groups:
        raise ValueError(f'conv_to_fc: the kernel has {out_channels} output channels, not '
                         f'divisible by groups={groups}')
    if any(k % 2 == 0 for k in kernel.shape[2:]):
        raise ValueError(f'conv_to_fc: kernel size {tuple(kernel.shape[2:])} must be odd: '
                         '"same" padding k // 2 keeps the partition size only for odd k')
    num_pixels = 1
    for s in size:
        num_pixels *= s
    fc_in = in_per_group * num_pixels
    # Row j of the identity is the one-hot input at flat position j within a group.
    identity = torch.eye(fc_in, dtype=kernel.dtype, device=kernel.device)
    identity = identity.reshape(fc_in, in_per_group, *size)
    conv = F.conv1d if spatial_dims == 1 else F.conv2d
    padding = tuple(k // 2 for k in kernel.shape[2:])
    response = conv(identity, kernel, padding=padding)
    fc_weight = response.reshape(fc_in, out_channels * num_pixels).t()
    fc_bias = None if bias is None else bias.repeat_interleave(num_pixels)
    return fc_weight, fc_bias


def add_conv_to_fc_(fc_weight, kernel, partition_size):
    """Add the FC form of a conv kernel to an FC weight, in place: ``fc_weight += W(kernel)``.

    Computes ``fc_weight + conv_to_fc(kernel, None, partition_size, groups)[0]`` exactly (the
    same additions; the layout does not depend on ``groups``), without building the FC form:
    for each output pixel, the kernel taps that fall inside the partition are added to the
    matching block of the weight. That touches only the taps' entries, instead of running a
    conv over ``C*h*w // g`` one-hot maps and adding a dense ``(O*h*w, C*h*w // g)`` result,
    which makes converting large blocks many times faster. Differentiable with respect to both
    arguments when ``fc_weight`` is not a leaf (autograd records the in-place additions).

    Args:
        fc_weight (Tensor): ``(O*h*w, C*h*w // g)`` (``(O*l, C*l // g)`` in 1-D), modified.
        kernel (Tensor): ``(O, C // g, kh, kw)``, or ``(O, C // g, k)`` for 1-D; odd sizes.
        partition_size (int | tuple[int]): ``(h, w)`` (or ``l`` for 1-D).

    Returns:
        Tensor: ``fc_weight``.
    """
    spatial_dims = kernel.dim() - 2
    if spatial_dims not in (1, 2):
        raise ValueError(f'add_conv_to_fc_ expects a 1-D or 2-D conv kernel, got shape '
                         f'{tuple(kernel.shape)}')
    size = _as_tuple(partition_size, spatial_dims)
    if spatial_dims == 1:  # a length-l partition is a 1 x l one
        kernel, size = kernel.unsqueeze(2), (1, *size)
    out_channels, in_per_group, kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f'add_conv_to_fc_: kernel size {tuple(kernel.shape[2:])} must be odd')
    h, w = size
    expected = (out_channels * h * w, in_per_group * h * w)
    if tuple(fc_weight.shape) != expected:
        raise ValueError(f'add_conv_to_fc_: fc_weight has shape {tuple(fc_weight.shape)}, but a '
                         f'{tuple(kernel.shape)} kernel over {size} partitions needs {expected}')
    if torch.is_grad_enabled() and (kernel.requires_grad or fc_weight.requires_grad):
        # Autograd would record every slice addition below as a node whose backward copies
        # the whole gradient (h*w copies of an FC-sized tensor: seconds per training step in
        # quantization-aware training); the gathered FC form is one op each way.
        return fc_weight.add_(_gathered_fc_form(kernel, h, w).reshape(expected))
    # [o, y, x, c, i, j]: output pixel (y, x) reads input pixel (i, j) through the tap
    # (i - y + kh // 2, j - x + kw // 2).
    blocks = fc_weight.view(out_channels, h, w, in_per_group, h, w)
    ph, pw = kh // 2, kw // 2
    for y in range(h):
        top, bottom = max(0, y - ph), min(h, y + ph + 1)
        for x in range(w):
            left, right = max(0, x - pw), min(w, x + pw + 1)
            blocks[:, y, x, :, top:bottom, left:right] += kernel[:, :, top - y + ph:bottom - y + ph,
                                                                 left - x + pw:right - x + pw]
    return fc_weight


def _gathered_fc_form(kernel, h, w):
    """The FC form of a 2-D ``kernel`` over ``h x w`` partitions as ``[o, y, x, c, i, j]``,
    each entry gathered from its tap (or from a zero where the tap is outside the kernel)."""
    out_channels, in_per_group, kh, kw = kernel.shape
    rows = torch.arange(h, device=kernel.device)
    cols = torch.arange(w, device=kernel.device)
    # [y, i]: the tap row through which output row y reads input row i (columns alike)
    tap_y = rows[None, :] - rows[:, None] + kh // 2
    tap_x = cols[None, :] - cols[:, None] + kw // 2
    inside = (((tap_y >= 0) & (tap_y < kh))[:, None, :, None] &
              ((tap_x >= 0) & (tap_x < kw))[None, :, None, :])
    # [y, x, i, j] -> the flat tap, or kh * kw: the zero appended to the kernel below
    taps = torch.where(inside, tap_y[:, None, :, None] * kw + tap_x[None, :, None, :],
                       kh * kw)
    flat = F.pad(kernel.reshape(out_channels, in_per_group, kh * kw), (0, 1))
    return flat[:, :, taps].permute(0, 2, 3, 1, 4, 5)


def inject_locality(fc3, fc3_bn, branches, partition_size):
    """RepMLPNet's locality injection: the FC3 with bias equal to FC3 + BN plus conv branches.

    RepMLPNet's FC3 acts on ``S`` share-sets: a groupwise FC with ``S`` groups of
    ``h*w -> h*w`` (weight ``(S*h*w, h*w)``, or that as a 1x1 conv), followed by a BN over the
    ``S`` share-sets; each Local Perceptron branch is a conv ``S -> S`` with ``S`` groups
    followed by its own BN. In :func:`conv_to_fc`'s notation that is a conv with ``O = C = g =
    S``, so the summed branches convert into FC3's layout as v1's Local Perceptron does.

    Args:
        fc3 (nn.Module): FC3, with ``weight`` ``(S*h*w, h*w[, 1, 1])`` and ``bias`` (or None).
        fc3_bn (nn.Module): the BN over the ``S`` share-sets.
        branches (Iterable[tuple[Tensor, Tensor]]): each branch's BN-fused ``(kernel, bias)``,
            kernels ``(S, 1, kh, kw)`` with odd sizes (:func:`fuse_conv_bn` of its conv and BN).
        partition_size (int | tuple[int, int]): ``(h, w)``.

    Returns:
        tuple[Tensor, Tensor]: the FC3 weight ``(S*h*w, h*w)`` and bias ``(S*h*w,)``.
    """
    h, w = _as_tuple(partition_size, 2)
    fc3_weight = fc3.weight.reshape(fc3.weight.shape[0], -1)
    # A fresh tensor, so that the branches are added to it in place.
    weight, bias = fuse_bn(fc3_weight, fc3.bias, *_bn_inference_params(fc3_bn), repeats=h * w)
    branches = list(branches)
    if branches:
        largest = tuple(max(k.shape[d] for k, _ in branches) for d in (2, 3))
        # Conv -> FC is linear in the kernel: sum the padded kernels, convert once.
        kernel = sum(pad_kernel(k, largest) for k, _ in branches)
        weight = add_conv_to_fc_(weight, kernel, (h, w))
        bias = bias + sum(b for _, b in branches).repeat_interleave(h * w)
    return weight, bias


def absorb_bn_into_fc(fc_weight, fc_bias, running_mean, running_var, gamma, beta, eps,
                      repeats=1):
    """Absorb a BN that comes *before* an FC (the Global Perceptron's BN) into that FC.

    The FC's input is the BN output flattened channel-major, each channel repeated
    ``repeats`` times (the partitions per channel): the paper's Algorithm 2.
    ``FC(BN(x)) = W (s*x + t) + b = (W * s) x + (W t + b)``.

    Args:
        fc_weight (Tensor): ``(out, C * repeats)``.
        fc_bias (Tensor | None): ``(out,)``.
        running_mean, running_var (Tensor): the BN's statistics ``(C,)``.
        gamma, beta (Tensor | None): the BN's affine parameters, ``None`` when it has none.
        eps (float): the BN's epsilon.
        repeats (int): FC inputs per BN channel.

    Returns:
        tuple[Tensor, Tensor]: the FC's new weight and bias.
    """
    scale = torch.rsqrt(running_var + eps)
    if gamma is not None:
        scale = scale * gamma
    shift = -running_mean * scale
    if beta is not None:
        shift = shift + beta
    scale = scale.repeat_interleave(repeats)
    shift = shift.repeat_interleave(repeats)
    new_weight = fc_weight * scale.unsqueeze(0)
    new_bias = fc_weight @ shift
    if fc_bias is not None:
        new_bias = new_bias + fc_bias
    return new_weight, new_bias


def absorb_bn_module_into_fc(fc, bn, repeats=1):
    """:func:`absorb_bn_into_fc` for a BN module followed by an ``nn.Linear`` module."""
    return absorb_bn_into_fc(fc.weight, fc.bias, *_bn_inference_params(bn), repeats=repeats)


def _bn_inference_params(bn):
    """``(running_mean, running_var, gamma, beta, eps)`` of a BN module, checked."""
    if getattr(bn, 'running_mean', None) is None or getattr(bn, 'running_var', None) is None:
        raise ValueError(f'cannot fuse {type(bn).__name__} without running statistics '
                         '(track_running_stats=False): it has no inference-time form')
    return bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps


def permute_features(tensor, dim, sizes, order):
    """``tensor`` with its axis ``dim`` viewed as ``sizes`` (their product is its length) and
    these sub-axes reordered by ``order`` (as ``Tensor.permute`` orders axes), flattened back.

    The inverse permutation is ``permute_features(t, dim, [sizes[i] for i in order],
    argsort(order))``.
    """
    shape = tensor.shape
    dim = dim % tensor.dim()
    split = tensor.reshape(*shape[:dim], *sizes, *shape[dim + 1:])
    axes = [*range(dim), *(dim + i for i in order), *range(dim + len(sizes), split.dim())]
    return split.permute(axes).reshape(shape)


def fc3_to_partition_major(weight, bias, in_channels, out_channels, partition_size, groups,
                           inverse=False):
    """A RepMLP FC3 from the channel-major feature order ``(C, h, w)`` to the partition-major
    one ``(g, h, w, C/g)``, inputs and outputs (``inverse``: back).

    In the partition-major order, every run of ``C/g`` features is one pixel's channels of
    one group: a channels_last map moves into it and out of it in contiguous runs.

    Args:
        weight (Tensor): ``(O*h*w, C*h*w // g)``.
        bias (Tensor | None): ``(O*h*w,)``.
        in_channels, out_channels (int): ``C`` and ``O``.
        partition_size (tuple[int, int]): ``(h, w)``.
        groups (int): ``g``.
        inverse (bool): from partition-major to channel-major.

    Returns:
        tuple[Tensor, Tensor | None]: the weight and bias, same shapes.
    """
    (h, w), g = partition_size, groups
    rows = ((g, out_channels // g, h, w), (0, 2, 3, 1))
    columns = ((in_channels // g, h, w), (1, 2, 0))
    if inverse:
        rows, columns = _inverse(*rows), _inverse(*columns)
    weight = permute_features(permute_features(weight, 0, *rows), 1, *columns)
    return weight, None if bias is None else permute_features(bias, 0, *rows)


def global_fcs_to_partition_major(fc1_weight, fc2_weight, fc2_bias, channels, num_parts,
                                  inverse=False):
    """A RepMLP Global Perceptron from the channel-major order ``(C, nh, nw)`` of its
    per-partition vector to the partition-major one ``(nh, nw, C)`` (``inverse``: back).

    FC1's inputs and FC2's outputs are reordered; FC1's bias and FC2's inputs do not change.
    In the partition-major order the pooled channels_last map is FC1's input as it lies, and
    FC2's output is one ``C``-vector per partition.

    Returns:
        tuple[Tensor, Tensor, Tensor]: FC1's weight, FC2's weight and FC2's bias.
    """
    order = ((channels, *num_parts), (1, 2, 0))
    if inverse:
        order = _inverse(*order)
    return (permute_features(fc1_weight, 1, *order), permute_features(fc2_weight, 0, *order),
            permute_features(fc2_bias, 0, *order))


def _inverse(sizes, order):
    """The ``(sizes, order)`` that undoes :func:`permute_features` with these."""
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return tuple(sizes[i] for i in order), tuple(inverse)


def _as_tuple(value, length):
    if isinstance(value, int):
        return (value, ) * length
    value = tuple(int(v) for v in value)
    if len(value) != length:
        raise ValueError(f'expected {length} sizes, got {value}')
    return value
