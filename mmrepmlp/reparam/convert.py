"""Convert every re-parameterizable module of any model to its deploy form."""
import copy

from ..utils import atomic_torch_save


def reparameterize_model(model):
    """Switch every module that has ``switch_to_deploy`` to its deploy form, in place.

    A module's ``switch_to_deploy`` converts its whole subtree, so the walk does not descend
    below such a module; everything else (task heads, necks, plain layers) is kept as is.
    """
    for child in model.children():
        if callable(getattr(child, 'switch_to_deploy', None)):
            child.switch_to_deploy()
        else:
            reparameterize_model(child)
    return model


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
    if do_copy:
        model = copy.deepcopy(model)
    if callable(getattr(model, 'switch_to_deploy', None)):
        model.switch_to_deploy()
    else:
        reparameterize_model(model)
    if save_path is not None:
        atomic_torch_save(model.state_dict(), save_path)
    return model
