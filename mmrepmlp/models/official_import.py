"""Import checkpoints of the official RepMLP code into mmrepmlp: RepMLP-ResNet (v1,
``repmlp_resnet.py``) and RepMLPNet (``repmlpnet.py``, also in MMPretrain's layout).

The official RepMLP-ResNet and :class:`RepMLPResNet` (inside an MMPretrain ``ImageClassifier``)
have the same tensors under different names; the key renaming below is the whole mapping,
except FC3, which the official code stores as a 1x1 conv ``(O*h*w, C*h*w/g, 1, 1)`` and
mmrepmlp as a groupwise FC ``(O*h*w, C*h*w/g)``. RepMLPNet's mapping is in
:mod:`.repmlpnet_import`; its checkpoints are recognised by their keys.

Which model a checkpoint holds (Light or Bottleneck, groups, resolution, preset, train or
deploy form) is read from its keys and shapes by comparing them with every model of its family
in the model zoo, so the result is always a name that ``mmpretrain.get_model`` knows.
"""
import functools
import os.path as osp
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import torch

from ..utils import register_model_index
from ..utils.checkpoint import (
    describe_differences,
    read_checkpoint,
    shapes,
    state_dict_differences,
)
from ..utils.errors import InputError
from ..utils.files import check_not_overwriting, check_writable, torch_save
from ..version import __version__
from .repmlpnet_import import convert_repmlpnet_state_dict, repmlpnet_layout

ZOO_PATTERN = 'repmlp-res50*'
REPMLPNET_ZOO_PATTERN = 'repmlpnet-*'
_LISTED_KEYS = 8  # how many offending keys an error message names

# (pattern, replacement), applied in order to every official key.
_KEY_RENAMES = (
    (r'^linear\.', 'head.fc.'),
    (r'^stage0\.0\.', 'backbone.stem.0.'),
    # Block layers: btnk_conv2 -> conv2, light_repmlp -> repmlp, ...
    (r'^(stage\d+\.\d+\.)(?:btnk|light)_', r'\1'),
    (r'^stage', 'backbone.stage'),
    # Inside a RepMLP.
    (r'\.fc1_fc2\.(fc[12])\.', r'.\1.'),
    (r'\.avg\.bn\.', '.global_bn.'),
    (r'\.repconv(\d+)\.', r'.local_perceptron.conv\1x\1.'),
)
_FC3_WEIGHT = re.compile(r'\.repmlp\.fc3\.weight$')


class OfficialImportError(InputError):
    """The source is not an official RepMLP checkpoint that this package can import."""


def load_official_state_dict(path):
    """Read an official checkpoint: unwrap ``state_dict``/``model`` and drop ``module.``.

    Raises:
        OfficialImportError: the file is not a readable checkpoint or holds no tensors.
    """
    try:
        return OrderedDict(read_checkpoint(path)[1])
    except InputError as err:
        raise OfficialImportError(f'{err}; give the .pth file of an official RepMLP-ResNet '
                                  'or RepMLPNet model') from err


def official_key_to_mmrepmlp(key):
    """The mmrepmlp ``ImageClassifier`` key of an official RepMLP-ResNet key."""
    for pattern, replacement in _KEY_RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def convert_official_state_dict(state_dict):
    """Rename every key of an official state dict and reshape FC3 weights to 2-D."""
    converted = OrderedDict()
    for key, tensor in state_dict.items():
        new_key = official_key_to_mmrepmlp(key)
        if _FC3_WEIGHT.search(new_key) and tensor.dim() == 4:
            tensor = tensor.reshape(tensor.shape[:2])
        converted[new_key] = tensor
    return converted


class ImportFamily(NamedTuple):
    """A family of official checkpoints: how its keys convert and which zoo models it fits."""
    name: str
    zoo_pattern: str
    expected: str  # what an error message asks for instead
    convert: Callable[[dict], dict]


FAMILIES = (
    ImportFamily('RepMLP-ResNet', ZOO_PATTERN, 'an official RepMLP v1 RepMLP-ResNet checkpoint '
                 '(repmlp_resnet.py)', convert_official_state_dict),
    ImportFamily('RepMLPNet', REPMLPNET_ZOO_PATTERN, 'a checkpoint of an official RepMLPNet '
                 'preset (repmlpnet.py: T224, B224, T256, B256, D256, L256) or of MMPretrain\'s '
                 'RepMLPNet', convert_repmlpnet_state_dict),
)


def checkpoint_family(state_dict):
    """The :class:`ImportFamily` of an official state dict, recognised by its keys."""
    return FAMILIES[1] if repmlpnet_layout(state_dict) else FAMILIES[0]


def zoo_model_names(pattern=ZOO_PATTERN):
    """The names of the model zoo's models matching ``pattern`` (RepMLP-ResNet's by default),
    sorted."""
    import mmpretrain

    register_model_index()
    return mmpretrain.list_models(pattern)


@functools.cache
def zoo_model_shapes(name):
    """``{key: shape}`` of the state dict of zoo model ``name`` (built without memory)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.apis import ModelHub
    from mmpretrain.registry import MODELS

    config = ModelHub.get(name).config
    with DefaultScope.overwrite_default_scope('mmpretrain'), torch.device('meta'):
        model = MODELS.build(config.model)
    return shapes(model.state_dict())


def match_zoo_model(state_dict, names=None, family=None):
    """The first zoo model whose state dict has exactly the keys and shapes of ``state_dict``.

    Args:
        state_dict (dict): a converted (mmrepmlp-named) state dict.
        names (Sequence[str], optional): the candidates; defaults to every model of the
            family in the zoo. A plain ResNet-50 fits its 224 and 320 entries alike; the first
            wins.
        family (ImportFamily, optional): the family of the checkpoint; RepMLP-ResNet by
            default.

    Raises:
        OfficialImportError: no candidate fits; names the closest one and what differs.
    """
    family = family or FAMILIES[0]
    actual = shapes(state_dict)
    closest = None
    for name in names or zoo_model_names(family.zoo_pattern):
        differences = state_dict_differences(zoo_model_shapes(name), actual)
        if not any(differences):
            return name
        distance = sum(map(len, differences))
        if closest is None or distance < closest[0]:
            closest = (distance, name, differences)
    if closest is None:
        raise OfficialImportError('no candidate model to match the checkpoint against')
    _, name, differences = closest
    raise OfficialImportError(
        f'the checkpoint matches no {family.name} model of the zoo; the closest is {name}, '
        f'against which it has {describe_differences(differences, _LISTED_KEYS)}; give '
        f'{family.expected}')


def import_official_checkpoint(src, dst, model_name=None):
    """Convert official checkpoint ``src`` into an MMPretrain checkpoint at ``dst``.

    Args:
        src (str): the official ``.pth`` (train or deploy form; keys may carry ``module.``,
            the dict may be wrapped in ``state_dict`` or ``model``): RepMLP-ResNet, RepMLPNet,
            or MMPretrain's RepMLPNet.
        dst (str): where to write ``{'state_dict': ..., 'meta': ...}`` (atomically).
        model_name (str, optional): the zoo model to convert for; detected when omitted.

    Returns:
        str: the zoo model name, for ``mmpretrain.get_model(name, pretrained=dst)``.

    Raises:
        OfficialImportError: unreadable or unknown checkpoint, or ``dst`` is ``src``.
    """
    try:
        check_not_overwriting([dst], [src])
        check_writable(dst)
    except InputError as err:
        raise OfficialImportError(str(err)) from err
    source = load_official_state_dict(src)
    family = checkpoint_family(source)
    candidates = zoo_model_names(family.zoo_pattern)
    if model_name is not None and model_name not in candidates:
        raise OfficialImportError(f'{model_name!r} is not a {family.name} model of the zoo, '
                                  f'as {src} is; use one of {candidates}')
    state_dict = family.convert(source)
    try:
        name = match_zoo_model(state_dict, [model_name] if model_name else None, family)
    except OfficialImportError as err:
        raise OfficialImportError(f'{src}: {err}') from err
    meta = dict(model=name, source=osp.basename(src),
                converter=f'mmrepmlp {__version__} official_to_mmrepmlp')
    torch_save(dict(state_dict=state_dict, meta=meta), dst)
    return name
