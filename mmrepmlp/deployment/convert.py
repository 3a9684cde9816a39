"""Convert a model to its deploy form in place, one log line per converted module, and find the
values that would make a conversion meaningless."""
from contextlib import contextmanager

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..reparam import conversion_method, reparameterize_model


@contextmanager
def _reporting_conversions(model, on_converted):
    """Call ``on_converted(name, module)`` after each conversion that changed its module
    without converting a reported module inside it (so a container such as a residual block
    or the backbone, which converts its children, is not reported again), however
    :func:`reparameterize_model` reaches the modules."""
    reported = []
    wrapped = []

    def reporting(name, module, convert):
        def convert_and_report():
            keys, reported_before = module.state_dict().keys(), len(reported)
            convert()
            if module.state_dict().keys() != keys and len(reported) == reported_before:
                reported.append(name)
                on_converted(name or 'model', module)
        return convert_and_report

    for name, module in model.named_modules():
        convert = conversion_method(module)
        if convert is not None:
            # An instance attribute shadows the method until it is deleted below.
            setattr(module, convert.__name__, reporting(name, module, convert))
            wrapped.append((module, convert.__name__))
    try:
        yield
    finally:
        for module, method_name in wrapped:
            delattr(module, method_name)


def convert_model(model, log=print):
    """Convert every re-parameterizable module of ``model`` in place, a log line per module.

    Returns:
        list[str]: the names of the converted modules (empty when nothing was left to convert).
    """
    converted = []

    def on_converted(name, module):
        converted.append(name)
        log(f'converted {name} ({type(module).__name__}) [{len(converted)}]')

    with _reporting_conversions(model, on_converted):
        reparameterize_model(model, inplace=True)
    return converted


def invalid_values(model):
    """Names of the parameters and buffers of ``model`` that hold NaN or inf, and of the BN
    running variances that are negative: what makes a conversion meaningless."""
    problems = [f'{name} (not finite)' for name, tensor in
                (*model.named_parameters(), *model.named_buffers())
                if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    for name, module in model.named_modules():
        variance = getattr(module, 'running_var', None)
        if isinstance(module, _BatchNorm) and variance is not None and (variance < 0).any():
            problems.append(f'{name}.running_var (negative)')
    return problems
