"""RepMLPNet checkpoints of the official code and of MMPretrain, in mmrepmlp's layout.

The official ``repmlpnet.py``, MMPretrain's ``RepMLPNet`` and :class:`HierRepMLPNet` (inside an
MMPretrain ``ImageClassifier``) hold the same tensors under different names; the renaming
below is the whole mapping, except that the official code and MMPretrain store the Global
Perceptron's FCs and FC3 as 1x1 convs ``(out, in, 1, 1)`` where mmrepmlp has ``(out, in)``.
Both forms map alike: the locality-injected one has ``fc3.bias`` and neither ``fc3_bn`` nor
the conv branches, as mmrepmlp's deploy form.
"""
import re
from collections import OrderedDict

# (pattern, replacement) applied in order to every key of a layout.
_OFFICIAL_RENAMES = (
    (r'^conv_embedding\.', 'backbone.stem.'),
    (r'^embeds\.', 'backbone.downsamples.'),
    (r'^stages\.', 'backbone.stages.'),
    (r'^head_norm\.', 'backbone.final_norm.'),
    (r'^head\.', 'head.fc.'),
    (r'\.prebn(\d)\.', r'.norm\1.'),
    (r'\.repmlp_block\.gp\.(fc\d)\.', r'.repmlp.\1.'),
)
_MMPRETRAIN_RENAMES = (
    (r'^backbone\.patch_embed\.projection\.', 'backbone.stem.conv.'),
    (r'^backbone\.patch_embed\.norm\.', 'backbone.stem.bn.'),
    (r'^backbone\.downsample_layers\.', 'backbone.downsamples.'),
    (r'\.repmlp_block\.gp\.conv(\d)\.conv\.', r'.repmlp.fc\1.'),
)
# Inside a unit, in both layouts.
_UNIT_RENAMES = (
    (r'\.repmlp_block\.', '.repmlp.'),
    (r'\.repconv(\d+)\.', r'.local_perceptron.conv\1x\1.'),
    (r'\.ffn_block\.ffn_fc(\d)\.', r'.ffn.fc\1.'),
)
LAYOUTS = {
    # name: (a key only that layout has, its renames)
    'official RepMLPNet': ('conv_embedding.conv.weight', _OFFICIAL_RENAMES + _UNIT_RENAMES),
    'MMPretrain RepMLPNet': ('backbone.patch_embed.projection.weight',
                             _MMPRETRAIN_RENAMES + _UNIT_RENAMES),
}
_FC_AS_CONV = re.compile(r'\.repmlp\.fc\d\.weight$')


def repmlpnet_layout(state_dict):
    """The name of the RepMLPNet layout of ``state_dict`` (see ``LAYOUTS``), or None."""
    for name, (marker, _) in LAYOUTS.items():
        if marker in state_dict:
            return name
    return None


def convert_repmlpnet_state_dict(state_dict, layout=None):
    """Rename every key of an official or MMPretrain RepMLPNet state dict for an mmrepmlp
    ``ImageClassifier`` with a :class:`HierRepMLPNet` backbone, and make the 1x1-conv FCs 2-D.

    Args:
        state_dict (dict): the source state dict (without a ``module.`` prefix).
        layout (str, optional): a key of ``LAYOUTS``; detected when omitted.

    Raises:
        ValueError: ``state_dict`` is in no RepMLPNet layout.
    """
    layout = layout or repmlpnet_layout(state_dict)
    if layout not in LAYOUTS:
        raise ValueError('the state dict is in no RepMLPNet layout: it has neither '
                         f'{" nor ".join(marker for marker, _ in LAYOUTS.values())}')
    renames = LAYOUTS[layout][1]
    converted = OrderedDict()
    for key, tensor in state_dict.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        if _FC_AS_CONV.search(key) and tensor.dim() == 4:
            tensor = tensor.reshape(tensor.shape[:2])
        converted[key] = tensor
    return converted
