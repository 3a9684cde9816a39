"""Convert every re-parameterizable module of any model to its deploy form."""
import copy

from ..utils.files import torch_save

# The method names re-parameterizable blocks use for their conversion: this package's and
# MMPretrain's (RepVGG, MobileOne, RepLKNet...) ``switch_to_deploy``, timm's
# ``reparameterize`` (MobileOne, FastViT) and ``fuse`` (RepViT, LeViT).
CONVERSION_METHODS = ('switch_to_deploy', 'reparameterize', 'fuse')


def conversion_method(module):
    """The bound conversion method of ``module`` (see ``CONVERSION_METHODS``), or None.

    A ``fuse`` that takes arguments (e.g. quantization's ``fuse_modules``-style helpers) is
    not a conversion of the module itself and is not used.
    """
    import inspect

    for name in CONVERSION_METHODS:
        method = getattr(module, name, None)
        if not callable(method):
            continue
        try:
            required = [p for p in inspect.signature(method).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                               p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            continue
        if not required:
            return method
    return None


def reparameterize_model(model, inplace=False):
    """Switch every re-parameterizable module of ``model`` to its deploy form.

    The walk is top-down: a module with a conversion method (``switch_to_deploy``,
    ``reparameterize`` or ``fuse``) converts its whole subtree, so the walk does not descend
    below it; everything else (task heads, necks, plain layers) is kept as it is. So a model
    that mixes RepMLP blocks with MMPretrain's RepVGG or MobileOne blocks, or timm's
    re-parameterizable blocks, converts in one call, as with timm's function of this name.

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
        method()
    else:
        reparameterize_children(model)
    return model


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
