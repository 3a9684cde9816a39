"""Copies into a reshaped layout computed in their source's order: an inductor post-grad pass.

The RepMLP block's deploy form reassembles FC3's output, laid out partition by partition
``(g, N, nh, nw, h, w, C/g)``, into the ``(N, H, W, C)`` map with a reshape of a permuted
view: a copy, then a view that merges dimensions (``nh, h`` into ``H``, ``g, C/g`` into ``C``).
Inductor keeps such a copy unrealized and computes it inside whatever reads the merged shape
next (the ReLU after the block, the quantize before the next int8 conv), so the loop runs over
the merged shape and finds every element through divisions and remainders of its indices: an
element-by-element gather that the C++ compiler does not vectorize, and whose index
expressions make inductor's code generation slow. :class:`CopyInSourceOrder` has inductor
compute the copy in the permuted order instead (runs of ``C/g`` channels, vectorized) into a
buffer that the merged shape views without a copy; what read it reads that buffer.
"""
import math

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass

aten, prims = torch.ops.aten, torch.ops.prims

_RESHAPES = (aten.reshape.default, aten.view.default, aten._unsafe_view.default)


class CopyInSourceOrder(CustomGraphPass):
    """An inductor post-grad pass (``post_grad_custom_post_pass``): every copy of a permuted
    tensor (``clone(permute(x))``) that a reshape merging dimensions reads is realized, in the
    copy's own layout, before that reshape (``prims.inductor_force_stride_order``); other
    readers of the copy are left as they were."""

    def __call__(self, graph):
        for reshape in list(graph.nodes):
            if reshape.op != 'call_function' or reshape.target not in _RESHAPES:
                continue
            copy = reshape.args[0]
            if not (_is_copy_of_permute(copy) and merges_dims(
                    copy.meta['val'].shape, reshape.meta['val'].shape)):
                continue
            value = copy.meta['val']
            with graph.inserting_after(copy):
                realized = graph.call_function(prims.inductor_force_stride_order.default,
                                               (copy, list(value.stride())))
            realized.meta['val'] = value
            reshape.replace_input_with(copy, realized)

    def uuid(self):
        return f'{__name__}.{type(self).__name__}-1'


def _is_copy_of_permute(node):
    return (node.op == 'call_function' and node.target is aten.clone.default
            and getattr(node.args[0], 'target', None) is aten.permute.default)


def merges_dims(shape, new_shape):
    """Whether reshaping ``shape`` to ``new_shape`` (static sizes) merges dimensions: some
    boundary between dimensions of ``shape`` is not one of ``new_shape``. False for symbolic
    sizes."""
    if not all(isinstance(size, int) for size in (*shape, *new_shape)):
        return False
    return bool(_boundaries(shape) - _boundaries(new_shape))


def _boundaries(shape):
    """The element counts at which a dimension of size > 1 ends (the last one excluded)."""
    sizes = [size for size in shape if size != 1]
    return {math.prod(sizes[index:]) for index in range(1, len(sizes))}
