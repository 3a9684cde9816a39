"""A model's raw network outputs, the seeded batches they are checked on, and their comparison:
what conversion, export and their checks share."""
import torch
from mmengine.model import BaseModel

from ..utils.errors import InputError, describe_exception

# The largest accepted difference between two forms, relative to the largest output.
DEFAULT_TOLERANCE = 1e-4


def forward_raw(model, inputs):
    """The model's raw network output on a batch, without data pre- or post-processing."""
    return model(inputs, mode='tensor') if isinstance(model, BaseModel) else model(inputs)


def output_tensors(outputs):
    """Flatten nested tuples, lists and dicts of outputs into a list of tensors."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        return [t for item in outputs for t in output_tensors(item)]
    return []


def raw_outputs(model, inputs):
    """The model's raw outputs on ``inputs`` (a batch), as a list of tensors, without
    gradients; a model that fails on them is an :class:`InputError` asking for the right
    input size."""
    try:
        with torch.no_grad():
            return output_tensors(forward_raw(model, inputs))
    except Exception as exc:
        raise InputError(f'the model fails on a random batch {tuple(inputs.shape)} '
                         f'({describe_exception(exc)}); pass --shape H W with its input '
                         'size') from exc


def random_batch(batch_size, shape, seed=0):
    """A reproducible standard-normal batch ``(batch_size, *shape)``."""
    return torch.randn(batch_size, *shape, generator=torch.Generator().manual_seed(seed))


def compare_outputs(reference, outputs):
    """Max absolute difference of two forms' raw outputs (lists of tensors), and the same
    relative to the largest reference magnitude; NaN when either is not finite."""
    pairs = list(zip(reference, outputs))
    if len(reference) != len(outputs) or any(r.shape != o.shape for r, o in pairs):
        raise InputError('the deploy model returns outputs of other shapes than the '
                         'training model; check the deploy config')
    if not all(torch.isfinite(t).all() for t in (*reference, *outputs)):
        return float('nan'), float('nan')
    max_abs = max((r.double() - o.double()).abs().max().item() for r, o in pairs)
    scale = max(r.double().abs().max().item() for r in reference)
    return max_abs, max_abs / max(scale, torch.finfo(torch.float64).tiny)
