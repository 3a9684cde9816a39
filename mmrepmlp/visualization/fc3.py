"""The paper's Fig. 5: FC3 weights of one output point, before and after merging the Local
Perceptron.

FC3's kernel is read as ``W(O, h, w, C/g, h, w)``; for output channel ``o``, output point
``(i, j)`` and input channel ``c`` (within the group) the plot shows ``W[o, i, j, c]`` over the
``h x w`` input positions as ``log(|W| / min |W|)``. Training-time FC3 (with its BN fused) has
no local prior; after merging, the weights around the point (inside the largest conv kernel,
outlined) are typically larger.
"""
import numpy as np
import torch

from ..models.blocks import RepMLPBlock
from ..reparam import fuse_conv_bn
from ..utils.errors import InputError
from ..utils.files import atomic_write


def find_repmlp_block(model, name):
    """The training-form RepMLP block at module path ``name`` of ``model``."""
    blocks = [n for n, m in model.named_modules() if isinstance(m, RepMLPBlock)]
    try:
        block = model.get_submodule(name)
    except AttributeError:
        block = None
    if not isinstance(block, RepMLPBlock):
        raise InputError(f'{name!r} is not a RepMLP block of the model; its blocks are: '
                         f'{", ".join(blocks) or "none"}')
    if block.deploy:
        raise InputError(f'{name} is in deploy form, its training-time FC3 is gone; use the '
                         'training-time config and checkpoint')
    return block


def centre_point(block):
    """The centre ``(i, j)`` of the block's partition, the default output point."""
    h, w = block.partition_size
    return h // 2, w // 2


def fc3_point_weights(block, point=None, out_channel=0, in_channel=0):
    """FC3 weights linking input channel ``in_channel`` to output ``(out_channel, point)``.

    Args:
        block (RepMLPBlock): a block in training form.
        point (tuple[int, int], optional): ``(i, j)`` in the partition; the centre by default.
        out_channel (int): output channel ``o``.
        in_channel (int): input channel within the output channel's group.

    Returns:
        tuple[Tensor, Tensor]: ``(before, after)``, each ``(h, w)``: FC3 fused with its BN,
        and the equivalent FC3 with the Local Perceptron merged in.
    """
    h, w = block.partition_size
    i, j = point if point is not None else centre_point(block)
    in_per_group = block.in_channels // block.groups
    if not (0 <= i < h and 0 <= j < w):
        raise InputError(f'--point {i} {j} is outside the {h}x{w} partition')
    if not (0 <= out_channel < block.out_channels and 0 <= in_channel < in_per_group):
        raise InputError(f'channels ({out_channel}, {in_channel}) out of range: the block has '
                         f'{block.out_channels} output channels and {in_per_group} input '
                         'channels per group')
    with torch.no_grad():
        before, _ = fuse_conv_bn(block.fc3, block.fc3_bn)
        after = block.get_equivalent_fc1_fc3_params()[2]
    shape = (block.out_channels, h, w, in_per_group, h, w)
    return tuple(weight.reshape(shape)[out_channel, i, j, in_channel].float().cpu()
                 for weight in (before, after))


def _log_normalized(weights):
    magnitude = weights.abs().numpy()
    smallest = magnitude[magnitude > 0].min() if (magnitude > 0).any() else 1.0
    return np.log(np.maximum(magnitude, smallest) / smallest)


def plot_fc3_point_weights(before, after, point, kernel_size, path, title=None):
    """Draw ``before`` and ``after`` side by side as ``log(|W| / min |W|)`` and save a PNG.

    Args:
        before, after (Tensor): ``(h, w)`` weights from :func:`fc3_point_weights`.
        point (tuple[int, int]): the output point, outlined with a dashed square.
        kernel_size (tuple[int, int] | None): the largest local kernel, outlined around the
            point (its receptive field); None without a Local Perceptron.
        path (str): the PNG to write (atomically).
        title (str, optional): the figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    figure = Figure(figsize=(9, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    i, j = point
    panels = (('training-time FC3 (BN fused)', before),
              ('FC3 + Local Perceptron merged', after))
    for index, (label, weights) in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        image = axes.imshow(_log_normalized(weights), cmap='Greys', interpolation='nearest')
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor='red',
                                 linestyle='--', linewidth=1.5))
        if kernel_size is not None:
            kh, kw = kernel_size
            axes.add_patch(Rectangle((j - kw // 2 - 0.5, i - kh // 2 - 0.5), kw, kh,
                                     fill=False, edgecolor='tab:blue', linewidth=1.5))
        height, width = weights.shape
        axes.set_xlim(-0.5, width - 0.5)  # the kernel outline may reach past the partition
        axes.set_ylim(height - 0.5, -0.5)
        axes.set_title(label, fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=10)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format='png'), suffix='.png')
