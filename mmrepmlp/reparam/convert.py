"""Convert every re-parameterizable module of any model to its deploy form."""
import copy
import inspect
import re

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.files import torch_save
from .functional import fuse_conv_bn, inject_locality

# The method names re-parameterizable blocks use for their conversion: this package's and
# MMPretrain's (RepVGG, MobileOne, RepLKNet...) ``switch_to_deploy``, timm's
# ``reparameterize`` (MobileOne, FastViT) and ``fuse`` (RepViT, LeViT), and the official
# RepMLPNet's ``local_inject`` (also MMPretrain's RepMLPNet blocks').
CONVERSION_METHODS = ('switch_to_deploy', 'reparameterize', 'fuse', 'local_inject')
# Containers whose conversion method only calls ``local_inject`` on their blocks: the walk
# converts those blocks itself (MMPretrain's RepMLPNet.switch_to_deploy).
LOCAL_INJECT_CONTAINERS = ('mmpretrain.models.backbones.repmlp.RepMLPNet', )
_BRANCH_NAME = re.compile(r'repconv\d+')


def conversion_method(module):
    """The conversion of ``module``, a callable without arguments, or None.

    In this order: a conversion method set on the instance itself (a caller's wrapper, such as
    the tools' reporting of each conversion); mmrepmlp's own conversion of the RepMLPNet blocks
    of the official code and of MMPretrain, whose ``local_inject`` builds float32 tensors (and
    of MMPretrain's RepMLPNet, whose ``switch_to_deploy`` only calls that); the module's method
    (see ``CONVERSION_METHODS``). A ``fuse`` that takes arguments (e.g. quantization's
    ``fuse_modules``-style helpers) is not a conversion of the module itself and is not used.
    """
    own = vars(module)
    for name in CONVERSION_METHODS:
        if _takes_no_arguments(own.get(name)):
            return own[name]
    exact = _exact_peer_conversion(module)
    if exact is not None:
        return exact
    for name in CONVERSION_METHODS:
        method = getattr(module, name, None)
        if _takes_no_arguments(method):
            return method
    return None


def _takes_no_arguments(method):
    if not callable(method):
        return False
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return not any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                   for p in parameters)


def reparameterize_model(model, inplace=False):
    """Switch every re-parameterizable module of ``model`` to its deploy form.

    The walk is top-down: a module with a conversion method (``switch_to_deploy``,
    ``reparameterize``, ``fuse`` or ``local_inject``) converts its whole subtree, so the walk
    does not descend below it; everything else (task heads, necks, plain layers) is kept as it
    is. So a model that mixes RepMLP blocks with MMPretrain's RepVGG or MobileOne blocks, or
    timm's re-parameterizable blocks, converts in one call, as with timm's function of this
    name. The RepMLPNet blocks of the official code and of MMPretrain are converted by
    mmrepmlp's math instead of their own ``local_inject``, which builds float32 tensors:
    exactly and in the model's dtype (float64 included).

    Args:
        model (nn.Module): any model (or a re-parameterizable module itself).
        inplace (bool): convert ``model`` itself instead of a deep copy. Defaults to False.

    Returns:
        nn.Module: the converted model (``model`` itself when ``inplace``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    method = conversion_method(model)
    if method is not None:
        _call_conversion(model, method)
    else:
        reparameterize_children(model)
    return model


def _exact_peer_conversion(module):
    """mmrepmlp's conversion of an official or MMPretrain RepMLPNet block, or of MMPretrain's
    RepMLPNet, named as the method it replaces; None for any other module."""
    if _is_local_inject_block(module):
        def local_inject():
            _inject_locality_exactly(module)
        return local_inject
    if _is_local_inject_container(module):
        def switch_to_deploy():
            reparameterize_children(module)
        return switch_to_deploy
    return None


def _is_local_inject_container(module):
    kind = type(module)
    return f'{kind.__module__}.{kind.__qualname__}' in LOCAL_INJECT_CONTAINERS


def _is_local_inject_block(module):
    """Whether ``module`` is an official or MMPretrain RepMLPNet block (``local_inject``,
    an FC3 as a grouped 1x1 conv, its BN and ``repconv<k>`` branches, partition ``h``/``w`` or
    ``path_h``/``path_w``), which mmrepmlp's math converts exactly in any dtype."""
    if not callable(getattr(module, 'local_inject', None)):
        return False
    if getattr(module, 'deploy', False):  # injected already: nothing left to convert
        return True
    return (_partition_size(module) is not None
            and isinstance(getattr(module, 'fc3', None), nn.Conv2d)
            and isinstance(getattr(module, 'fc3_bn', None), _BatchNorm))


def _partition_size(module):
    for names in (('h', 'w'), ('path_h', 'path_w')):
        if all(isinstance(getattr(module, name, None), int) for name in names):
            return tuple(getattr(module, name) for name in names)
    return None


def _inject_locality_exactly(block):
    """What the peer's own ``local_inject`` does (FC3 with bias, ``fc3_bn`` an identity, the
    branches removed, ``deploy = True``), by :func:`inject_locality`: in the block's dtype,
    where the peers build float32 tensors. Idempotent."""
    if block.deploy:
        return
    names = [name for name, _ in block.named_children() if _BRANCH_NAME.fullmatch(name)]
    branches = [getattr(block, name) for name in names]
    with torch.no_grad():
        weight, bias = inject_locality(block.fc3, block.fc3_bn,
                                       [fuse_conv_bn(b.conv, b.bn) for b in branches],
                                       _partition_size(block))
    block.fc3.weight = nn.Parameter(weight.reshape(block.fc3.weight.shape))
    block.fc3.bias = nn.Parameter(bias)
    block.fc3_bn = nn.Identity()
    for name in names:
        delattr(block, name)
    block.deploy = True


def _call_conversion(module, method):
    """``method()``; a failure outside float32 says which conversion failed and why it may."""
    try:
        method()
    except (RuntimeError, TypeError) as err:
        dtypes = sorted({str(p.dtype) for p in module.parameters()} - {'torch.float32'})
        if not dtypes:
            raise
        raise RuntimeError(
            f'{type(module).__name__}.{method.__name__}() failed on parameters of '
            f'{", ".join(dtypes)} ({type(err).__name__}: {err}); mmrepmlp does not know this '
            'conversion and called the module\'s own, which may work in float32 only: '
            'convert the model in float32 and cast the result') from err


def reparameterize_children(module):
    """Convert every re-parameterizable module below ``module``, in place: what a container's
    own ``switch_to_deploy`` (a backbone, a residual block) does."""
    for child in module.children():
        reparameterize_model(child, inplace=True)
    return module


def repmlp_model_convert(model, save_path=None, do_copy=True):
    """The original RepMLP API: convert ``model`` (a copy by default) and optionally save it.

    Args:
        model (nn.Module): any model holding RepMLP blocks or other re-parameterizable
            modules (or being one).
        save_path (str, optional): where to write the deploy ``state_dict`` (atomically).
        do_copy (bool): convert a deep copy and leave ``model`` untouched.

    Returns:
        nn.Module: the converted model.
    """
    model = reparameterize_model(model, inplace=not do_copy)
    if save_path is not None:
        torch_save(model.state_dict(), save_path)
    return model
