"""One call for the fastest exact inference form of a model on its device.

:func:`optimize_for_inference` converts a copy of the model to its deploy form and then applies
what pays on the device: channels_last (oneDNN's and cuDNN's fastest layout for convs) and
``torch.compile`` by inductor with freezing (the weights become constants that inductor folds
and prepacks); on CUDA also ``max_autotune`` with CUDA graphs. docs/deploy.md has the measured
speed of every path and what reduced precision costs on which CPU.

Float32 stays exact (the compiled model differs from the eager one by float rounding only);
reduced precision is used only when ``dtype`` asks for it (autocast, outputs back in float32),
never silently.

For MMEngine models (MMPretrain classifiers, MMSegmentation segmentors, face recognizers) the
``BaseModel`` interface keeps working: the backbone, neck and heads are compiled one by one,
while ``data_preprocessor``, ``test_step``, ``predict`` and the post-processing stay eager
Python, so MMPretrain's ``inference_model`` and inferencers and the Runner's test loop run the
optimized model as they run the original. The result is inference-only: its parameters are
frozen and ``train()`` raises.
"""
import copy
import functools
import types
from dataclasses import dataclass

import torch
from mmengine.model import BaseModel

from .convert import convert_model
from .copy_order import CopyInSourceOrder

BACKENDS = ('auto', 'inductor', 'eager')
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Compiled (part, input shape) pairs of all optimized models in a process, e.g. 4 models of
# 3 parts at 4 batch sizes (Dynamo's own limit, 8, is reached by 3 such models).
COMPILED_ENTRIES = 64


@dataclass(frozen=True)
class InferenceSettings:
    """What :func:`optimize_for_inference` applied; the optimized model's
    ``inference_settings``."""
    device: torch.device
    dtype: torch.dtype
    channels_last: bool
    compiled: bool
    converted: tuple


def optimize_for_inference(model, backend='auto', dtype=torch.float32, channels_last='auto',
                           device=None, log=print):
    """An inference-only copy of ``model`` in its fastest exact form on ``device``.

    The copy is converted to the deploy form (every re-parameterizable module), its parameters
    are frozen, and then, as chosen by the arguments: channels_last memory format, reduced
    precision autocast and ``torch.compile``. ``model`` itself is not changed and keeps
    training.

    Args:
        model (nn.Module): the model in eval mode (``model.eval()``): any module, or an
            MMEngine ``BaseModel`` whose backbone, neck and heads are then optimized one by
            one behind its unchanged interface.
        backend (str): ``'inductor'`` (``torch.compile`` with freezing; on CUDA also
            max-autotune and CUDA graphs), ``'eager'`` (no compilation) or ``'auto'``
            (inductor when it can compile on the device: on CPU it needs a C++ compiler).
            Defaults to 'auto'.
        dtype (torch.dtype): ``torch.float32`` (exact), or ``torch.bfloat16`` /
            ``torch.float16`` (CUDA only) to run under autocast in that precision, which is
            not exact; outputs come back in float32. Defaults to ``torch.float32``.
        channels_last (bool | str): run 2-D feature maps in channels_last memory format;
            ``'auto'`` does where it is faster: on CPU for every model with 2-D convs, on CUDA
            for those in reduced precision. Defaults to 'auto'.
        device (str | torch.device, optional): where the optimized model runs; by default
            where ``model``'s parameters are.
        log (Callable[[str], None]): where the lines saying what was done go.

    Returns:
        nn.Module: the optimized copy, of the same class as ``model``; its
        ``inference_settings`` (:class:`InferenceSettings`) records what was applied. Its
        weights are constants of the compiled code: to change them, optimize again. On CUDA
        the compiled parts replay CUDA graphs, whose outputs the next call overwrites: clone
        an output to keep it across calls (the ``BaseModel`` post-processing makes new
        tensors anyway).

    Raises:
        ValueError: ``model`` is in train mode, or an argument is not one of its choices.
        RuntimeError: ``backend='inductor'`` and inductor cannot compile on the device.
    """
    _check_choices(backend, dtype, channels_last)
    if model.training:
        raise ValueError(f'optimize_for_inference: {type(model).__name__} is in train mode; '
                         'call model.eval() first (the deploy form uses the BN running '
                         'statistics and has no training behaviour)')
    device = _resolve_device(model, device)
    if dtype is torch.float16 and device.type != 'cuda':
        raise ValueError('optimize_for_inference: dtype=torch.float16 needs a CUDA device; on '
                         'the CPU use torch.bfloat16 or torch.float32')
    compiled = _use_inductor(backend, device)
    use_channels_last = _use_channels_last(channels_last, model, device, dtype)

    optimized = copy.deepcopy(model).to(device)
    converted = convert_model(optimized, log=lambda line: None)
    log(f'optimize_for_inference: converted {len(converted)} modules to the deploy form')
    make_inference_only(optimized)
    if use_channels_last:
        optimized.to(memory_format=torch.channels_last)
    parts = optimized_parts(optimized)
    for _, part in parts:
        part.forward = _fast_forward(part.forward, device, dtype, use_channels_last, compiled)
    _log_choices(log, [name for name, _ in parts], device, dtype, use_channels_last, compiled)
    optimized.inference_settings = InferenceSettings(device, dtype, use_channels_last,
                                                     compiled, tuple(converted))
    return optimized


def _check_choices(backend, dtype, channels_last):
    if backend not in BACKENDS:
        raise ValueError(f'optimize_for_inference: backend must be one of {BACKENDS}, got '
                         f'{backend!r}')
    if dtype not in DTYPES:
        raise ValueError(f'optimize_for_inference: dtype must be one of {DTYPES}, got '
                         f'{dtype!r}')
    if not (channels_last == 'auto' or isinstance(channels_last, bool)):
        raise ValueError("optimize_for_inference: channels_last must be 'auto', True or "
                         f'False, got {channels_last!r}')


def _resolve_device(model, device):
    if device is not None:
        return torch.device(device)
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device('cpu')


def inductor_available(device):
    """Whether inductor can compile for ``device`` (a C++ compiler on CPU, Triton on CUDA)."""
    if device.type == 'cuda':
        from torch.utils._triton import has_triton

        return has_triton()
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception:  # no compiler found: inductor raises RuntimeError or a build error
        return False
    return True


def _use_inductor(backend, device):
    if backend == 'eager':
        return False
    available = inductor_available(device)
    if backend == 'inductor' and not available:
        raise RuntimeError(f"optimize_for_inference: backend='inductor' cannot compile for "
                           f"{device.type} on this machine (no C++ compiler / Triton); use "
                           "backend='eager' or 'auto'")
    return available


def _use_channels_last(choice, model, device, dtype):
    if choice != 'auto':
        return choice
    has_2d_convs = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    # oneDNN's CPU convs are fastest in channels_last in every precision; cuDNN gains from
    # it with tensor cores, that is in reduced precision.
    return has_2d_convs and (device.type == 'cpu' or dtype is not torch.float32)


def optimized_parts(model):
    """``[(name, module)]`` whose forward is optimized: the networks of an MMEngine
    ``BaseModel`` (not its data preprocessor), or the model itself."""
    if not isinstance(model, BaseModel):
        return [(type(model).__name__, model)]
    return [(name, child) for name, child in model.named_children()
            if name != 'data_preprocessor']


def _fast_forward(forward, device, dtype, channels_last, compiled):
    """``forward`` with its 4-D inputs in channels_last, under autocast, compiled: as asked."""
    run = forward
    if channels_last:
        run = _with_channels_last_inputs(run)
    if dtype is not torch.float32:
        run = _with_autocast(run, device.type, dtype)
    return compile_frozen(run, device) if compiled else run


def as_channels_last(value):
    """A 4-D tensor (an image batch) in channels_last memory format; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value


def _with_channels_last_inputs(forward):

    @functools.wraps(forward)
    def run(*args, **kwargs):
        return forward(*map(as_channels_last, args), **kwargs)

    return run


def _with_autocast(forward, device_type, dtype):

    @functools.wraps(forward)
    def run(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            return _to_float32(forward(*args, **kwargs))

    return run


def _to_float32(outputs):
    """Floating tensors in (nested tuples, lists and dicts of) ``outputs`` as float32."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_to_float32(o) for o in outputs)
    if isinstance(outputs, dict):
        return {key: _to_float32(value) for key, value in outputs.items()}
    return outputs


def compile_frozen(forward, device, options=None):
    """``torch.compile`` of ``forward`` (any callable) by inductor with freezing: its weights
    become constants of the compiled code. On CUDA also max-autotune and CUDA graphs; on the
    CPU the copies that reassemble permuted layouts run in their source's order
    (:mod:`.copy_order`). ``options``: further inductor configuration, in effect while it
    compiles (its ``post_grad_custom_post_pass`` runs after that one).

    Shapes are static: each new input shape compiles its own code (the fastest; and
    inductor's dynamic-shape code for int8 convs fails its own stride checks in torch 2.14).
    Dynamo keeps the compiled code per Python function, so the wrappers of every compiled part
    of every model in the process share one cache; its limit is raised from Dynamo's 8 to
    :data:`COMPILED_ENTRIES` entries while they run, beyond which further ones run eagerly.
    """
    from torch._dynamo import config as dynamo_config
    from torch._inductor import config as inductor_config
    from torch._inductor.custom_graph_pass import get_custom_graph_passes

    cuda_options = dict(max_autotune=True, **{'triton.cudagraphs': True}) if (
        device.type == 'cuda') else None
    compiled = torch.compile(forward, dynamic=False, options=cuda_options)
    config = dict(options or {})
    if device.type == 'cpu':
        config['post_grad_custom_post_pass'] = [
            CopyInSourceOrder(),
            *get_custom_graph_passes(config.get('post_grad_custom_post_pass'))]

    @functools.wraps(forward)
    def run(*args, **kwargs):
        # Freezing must be on while Dynamo traces (the first call of each input shape), not
        # only in inductor's options: Dynamo then marks the parameters static, which is what
        # lets inductor fold them into constants and prepack the convs' weights.
        with inductor_config.patch(freezing=True, **config), dynamo_config.patch(
                recompile_limit=COMPILED_ENTRIES):
            return compiled(*args, **kwargs)

    return run


def _log_choices(log, parts, device, dtype, channels_last, compiled):
    done = [f'on {device}', 'float32 (exact)' if dtype is torch.float32 else
            f'{dtype} autocast (not exact)']
    if channels_last:
        done.append('channels_last')
    if compiled:
        how = 'max-autotune, CUDA graphs' if device.type == 'cuda' else 'freezing'
        done.append(f'torch.compile (inductor, {how}) of {", ".join(parts)}: the first call '
                    'of each input shape compiles')
    log('optimize_for_inference: ' + '; '.join(done))


def make_inference_only(model):
    """Freeze the parameters of ``model`` and make its ``train()`` raise; in place.

    Returns:
        nn.Module: ``model``, in eval mode.
    """
    model.requires_grad_(False)
    model.train = types.MethodType(_train_refused, model)
    return model.eval()


def _train_refused(self, mode=True):
    """``train()`` of an optimized model: eval mode only."""
    if mode:
        raise RuntimeError(f'this {type(self).__name__} is inference-only (made by '
                           'optimize_for_inference or quantize_int8: deploy form, frozen '
                           'weights); train the original model and optimize it again')
    return torch.nn.Module.train(self, False)
