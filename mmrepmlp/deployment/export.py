"""Export deploy-form models to ONNX, AOTInductor ``.pt2`` packages and TorchScript, verified.

What is exported is the raw network of :func:`~mmrepmlp.deployment.forward_raw` (for MMEngine
models ``forward(mode='tensor')``: a classifier's logits, a segmentor's decode-head logits, a
face model's embedding) on a preprocessed (normalized) image batch; the data preprocessor and
the post-processing stay with the caller. A model still in training form is converted to the
deploy form first, so the artifact holds the re-parameterized FC layers.

Every format goes through one :func:`torch.export.export` capture, which refuses Python control
flow that depends on tensor values (the tracing exporters would silently record the branch the
example batch took); the failure names the module whose forward could not be captured. Each
artifact is written to a temporary file beside its destination, loaded back by its own runtime
(onnxruntime, ``aoti_load_package``, ``torch.jit.load``), compared with PyTorch on random
batches and only then committed, so a failed export or check leaves nothing behind.
"""
import errno
import io
import logging
import os.path as osp
import re
import sys
import time
import warnings
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from typing import List, Tuple

import torch
from torch import nn

from ..utils.errors import InputError, describe_exception
from ..utils.files import check_writable, staged_files
from .convert import convert_model
from .inference import as_channels_last
from .outputs import (
    DEFAULT_TOLERANCE,
    compare_outputs,
    forward_raw,
    output_tensors,
    random_batch,
    raw_outputs,
)

# The opset the exporter's operator library is written in: other opsets are produced by the
# ONNX version converter after the export, and every onnxruntime since 1.14 runs this one.
DEFAULT_OPSET = 18
EXTENSIONS = {'onnx': '.onnx', 'pt2': '.pt2', 'torchscript': '.ts'}
INPUT_NAME = 'input'


@dataclass
class ExportResult:
    """What an export wrote and how closely the artifact matched PyTorch.

    Attributes:
        path (str): the written artifact.
        format (str): one of :data:`EXTENSIONS`.
        converted (list[str]): the modules converted to the deploy form before exporting.
        checks (list[tuple[int, float, float]]): per checked batch size, the max absolute and
            relative difference from PyTorch's output.
    """
    path: str
    format: str
    converted: List[str] = field(default_factory=list)
    checks: List[Tuple[int, float, float]] = field(default_factory=list)

    @property
    def max_abs_diff(self):
        return max(check[1] for check in self.checks)

    @property
    def max_rel_diff(self):
        return max(check[2] for check in self.checks)


class RawOutputModel(nn.Module):
    """``model``'s raw network output on one image batch, as a tensor or a tuple of tensors
    (what the exporters accept as outputs)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        outputs = output_tensors(forward_raw(self.model, inputs))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def exportable_model(model, log=print):
    """``model`` in deploy form and eval mode, wrapped as a :class:`RawOutputModel`.

    Args:
        model (nn.Module): a model in training or deploy form; converted in place.
        log (Callable[[str], None]): where the conversion is reported.

    Returns:
        tuple[RawOutputModel, list[str]]: the wrapped model and the converted module names
        (empty when the model was in deploy form already).
    """
    converted = convert_model(model.eval(), log)
    if converted:
        log(f'converted {len(converted)} modules to the deploy form before exporting')
    return RawOutputModel(model).eval(), converted


@contextmanager
def _tracking_active_modules(model):
    """Yield the names of the modules of ``model`` whose forward is running. An exception
    escapes a forward without its forward hook running, so after a failure the list ends with
    the innermost module that the failure came from."""
    active, handles = [], []

    def leave(*_):
        active.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(
            lambda *_, name=name: active.append(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield active
    finally:
        for handle in handles:
            handle.remove()


def _user_code_location(message):
    """``' at FILE:LINE (`code`)'`` for the last frame outside torch that ``message`` quotes
    in traceback form (torch.export quotes the user code that raised), else ``''``."""
    torch_dir = osp.join(osp.dirname(torch.__file__), '')
    frames = re.findall(r'File "([^"]+)", line (\d+)[^\n]*\n[ \t]*([^\n]*)', message)
    frames = [frame for frame in frames if not frame[0].startswith(torch_dir)]
    if not frames:
        return ''
    path, line, code = frames[-1]
    return f' at {path}:{line}' + (f' (`{code.strip()}`)' if code.strip() else '')


def _unexportable(model, active, exc):
    """The InputError for a forward that torch.export cannot capture, naming the innermost
    module that was running (the first line of the error alone when none was)."""
    if not active:
        return InputError(f'torch.export cannot capture the model: {describe_exception(exc)}')
    name = active[-1]
    module = model.get_submodule(name)
    return InputError(
        f'torch.export cannot capture the forward of module {name or "(the model)"} '
        f'({type(module).__name__}){_user_code_location(str(exc))}: '
        f'{describe_exception(exc)}; make that forward traceable by torch.export (e.g. '
        'torch.where or torch.cond instead of a Python `if` on tensor values) or export a '
        'model without it')


@contextmanager
def _quiet_failed_capture():
    """Keep what torch.export prints when it fails (the whole partial graph, hundreds of lines
    on stderr, and a warning naming an unbacked symbol) off the terminal: the error raised
    is reported instead. On success what was printed is passed on."""
    logger = logging.getLogger('torch.fx.experimental.symbolic_shapes')
    level, printed = logger.level, io.StringIO()
    logger.setLevel(logging.ERROR)
    try:
        with redirect_stderr(printed):
            yield
    finally:
        logger.setLevel(level)
    sys.stderr.write(printed.getvalue())


def export_program(model, inputs, dynamic_batch=False):
    """Capture ``model`` (a :class:`RawOutputModel`) with :func:`torch.export.export`.

    Args:
        model (RawOutputModel): the wrapped model.
        inputs (Tensor): the example batch.
        dynamic_batch (bool): make the batch axis dynamic (then ``inputs`` needs a batch of 2
            or more: torch.export treats an axis of size 1 as fixed).

    Raises:
        InputError: the forward cannot be captured; the message names the module.
    """
    if dynamic_batch and inputs.shape[0] < 2:
        raise InputError(f'a dynamic batch needs an example batch of 2 or more, got '
                         f'{inputs.shape[0]}; pass --batch 2 or more')
    dynamic_shapes = ({0: torch.export.Dim('batch', min=1)}, ) if dynamic_batch else None
    with _tracking_active_modules(model.model) as active, _quiet_failed_capture():
        try:
            return torch.export.export(model, (inputs, ), dynamic_shapes=dynamic_shapes)
        except Exception as exc:
            raise _unexportable(model.model, active, exc) from exc


def verify_artifact(run, references, tolerance=DEFAULT_TOLERANCE, compare=compare_outputs,
                    log=print):
    """Compare an artifact's outputs with PyTorch's on the given batches.

    Args:
        run (Callable[[Tensor], list[Tensor]]): runs the artifact on a batch.
        references (list[tuple[Tensor, list[Tensor]]]): batches and PyTorch's raw outputs.
        tolerance (float): the largest accepted difference relative to the largest output.
        compare (Callable): ``(reference, outputs) -> (max abs, max relative difference)``;
            by default :func:`compare_outputs` (the tools pass their task's).
        log (Callable[[str], None]): where a line per batch goes.

    Returns:
        list[tuple[int, float, float]]: per batch, its size and the max absolute and relative
        difference.

    Raises:
        InputError: the artifact fails to run, or differs beyond ``tolerance`` (or is NaN).
    """
    checks = []
    for inputs, reference in references:
        try:
            with torch.no_grad():
                outputs = run(inputs)
        except Exception as exc:
            raise InputError(f'the exported model fails on a batch {tuple(inputs.shape)}: '
                             f'{describe_exception(exc)}') from exc
        max_abs, max_rel = compare(reference, outputs)
        log(f'check on a random batch {tuple(inputs.shape)}: max abs difference {max_abs:.3e}, '
            f'max relative difference {max_rel:.3e} (tolerance {tolerance:g})')
        if not max_rel <= tolerance:  # NaN fails too
            raise InputError(f'the exported model differs from PyTorch by {max_rel:.3e} '
                             f'relative on a batch {tuple(inputs.shape)} (tolerance '
                             f'{tolerance:g}, NaN means an output is not finite); nothing '
                             'written')
        checks.append((inputs.shape[0], max_abs, max_rel))
    return checks


# What a full or read-only disk raises while an artifact is written, however the exporter
# wraps it.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def _storage_error(exc):
    """The OSError of a full or read-only disk among ``exc`` and the errors it wraps."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def check_output_path(path, fmt):
    """Raise :class:`InputError` before any work when ``path`` cannot take a ``fmt`` artifact:
    unwritable, or (AOTInductor's requirement) a package not named ``*.pt2``."""
    if fmt == 'pt2' and not path.endswith('.pt2'):
        raise InputError(f'AOTInductor packages must be named *.pt2, got {path}; change the '
                         'output path')
    check_writable(path)


def _export(fmt, description, write, load, model, path, inputs, dynamic_batch, tolerance,
            compare, log):
    """Wrap ``model``, ``write(wrapped, tmp)`` it, ``load(tmp)`` back, verify, then commit.

    With a dynamic batch the check runs on a second batch size too.
    """
    check_output_path(path, fmt)
    wrapped, converted = exportable_model(model, log)
    batches = [inputs]
    if dynamic_batch:
        batches.append(random_batch(inputs.shape[0] + 1, inputs.shape[1:], seed=1))
    references = [(batch, raw_outputs(wrapped, batch)) for batch in batches]
    with staged_files([path]) as (tmp, ):
        start = time.perf_counter()
        try:
            write(wrapped, tmp)
        except Exception as exc:
            storage = _storage_error(exc)
            if storage is None:
                raise
            raise InputError(f'cannot write {path}: {storage.strerror} (the export went to '
                             f'{tmp}, removed now); free space on that disk or choose another '
                             'output path') from exc
        log(f'exported {description}{" with a dynamic batch" if dynamic_batch else ""} in '
            f'{time.perf_counter() - start:.1f} s')
        checks = verify_artifact(load(tmp), references, tolerance, compare, log)
    log(f'wrote {path}')
    return ExportResult(path, fmt, converted, checks)


def _onnx_runner(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # honour OMP_NUM_THREADS as torch
    try:
        session = onnxruntime.InferenceSession(path, options,
                                               providers=['CPUExecutionProvider'])
    except Exception as exc:
        raise InputError(f'onnxruntime cannot load the exported model: '
                         f'{describe_exception(exc)}; pass a lower --opset') from exc
    return lambda inputs: [torch.from_numpy(output) for output in
                           session.run(None, {INPUT_NAME: inputs.numpy()})]


def export_onnx(model, path, inputs, opset=DEFAULT_OPSET, dynamic_batch=False,
                tolerance=DEFAULT_TOLERANCE, compare=compare_outputs, log=print):
    """Export ``model`` to an ONNX file and check it with onnxruntime (CPU).

    Uses ``torch.onnx.export(dynamo=True)`` on the :func:`export_program` capture rather than
    the legacy TorchScript-based exporter: both export these models exactly, but the legacy
    one traces, so Python branches on tensor values are frozen to the example's branch with
    no more than a TracerWarning, while torch.export refuses them and names the code; the
    dynamic batch is a torch.export ``Dim`` whose guards torch checks, not an unchecked
    renamed axis; and torch 2.14 deprecates the legacy exporter. The model is written as one
    file (no external data: its name would be the temporary file's; the models here are far
    below protobuf's 2 GiB limit). Input ``input``, outputs ``output`` or ``output_<i>``.

    Args:
        model (nn.Module): the model, in training or deploy form (converted in place).
        path (str): the ``.onnx`` file to write.
        inputs (Tensor): the example and check batch ``(N, C, H, W)``.
        opset (int): the ONNX opset.
        dynamic_batch (bool): make the batch axis dynamic (checked on a second batch size).
        tolerance (float): the largest accepted difference relative to the largest output.
        compare (Callable): ``(reference, outputs) -> (max abs, max relative difference)``;
            by default :func:`compare_outputs` (the tools pass their task's).
        log (Callable[[str], None]): where progress lines go.

    Returns:
        ExportResult: what was written and the measured difference.

    Raises:
        InputError: the model cannot be exported, or the check fails; nothing is written then.
    """

    def write(wrapped, tmp):
        # ONNX has no memory format: captured from a channels_last batch, the graph holds the
        # RepMLP blocks' channels_last partitioning, whose transposes move runs of channels.
        program = export_program(wrapped, as_channels_last(inputs), dynamic_batch)
        num_outputs = len(program.graph_signature.user_outputs)
        output_names = ['output'] if num_outputs == 1 else [
            f'output_{index}' for index in range(num_outputs)]
        try:
            torch.onnx.export(program, f=tmp, dynamo=True, opset_version=opset,
                              external_data=False, verbose=False, input_names=[INPUT_NAME],
                              output_names=output_names)
        except Exception as exc:
            raise InputError(f'the ONNX exporter cannot translate the model to opset {opset}: '
                             f'{describe_exception(exc)}') from exc

    return _export('onnx', f'to ONNX (opset {opset})', write, _onnx_runner, model, path, inputs,
                   dynamic_batch, tolerance, compare, log)


def _pt2_runner(path):
    package = torch._inductor.aoti_load_package(path)
    return lambda inputs: output_tensors(package(inputs))


def export_pt2(model, path, inputs, dynamic_batch=False, tolerance=DEFAULT_TOLERANCE,
               compare=compare_outputs, log=print):
    """Export ``model`` with torch.export and compile it to an AOTInductor package.

    The ``.pt2`` package holds the compiled CPU code and the weights: any process with torch
    runs it without this package and without recompiling, through
    ``torch._inductor.aoti_load_package(path)(inputs)``. It is checked after loading it back.
    Compiling needs a C++ compiler and takes tens of seconds even for small models.

    Args:
        model (nn.Module): the model, in training or deploy form (converted in place).
        path (str): the package to write; its name must end with ``.pt2``.
        inputs (Tensor): the example and check batch ``(N, C, H, W)``.
        dynamic_batch (bool): make the batch axis dynamic (checked on a second batch size).
        tolerance (float): the largest accepted difference relative to the largest output.
        compare (Callable): ``(reference, outputs) -> (max abs, max relative difference)``;
            by default :func:`compare_outputs` (the tools pass their task's).
        log (Callable[[str], None]): where progress lines go.

    Returns:
        ExportResult: what was written and the measured difference.

    Raises:
        InputError: the model cannot be exported or compiled, or the check fails; nothing is
        written then.
    """

    def write(wrapped, tmp):
        program = export_program(wrapped, inputs, dynamic_batch)
        # packaged in memory and saved through Python's file: torch's zip writer aborts the
        # process on a full disk
        package = io.BytesIO()
        try:
            torch._inductor.aoti_compile_and_package(program, package_path=package)
        except Exception as exc:
            raise InputError(f'AOTInductor cannot compile the model: {describe_exception(exc)}; '
                             'it needs a working C++ compiler (gcc or clang)') from exc
        with open(tmp, 'wb') as f:
            f.write(package.getbuffer())

    return _export('pt2', 'to an AOTInductor package', write, _pt2_runner, model, path, inputs,
                   dynamic_batch, tolerance, compare, log)


def _torchscript_runner(path):
    module = torch.jit.load(path, map_location='cpu')
    return lambda inputs: output_tensors(module(inputs))


def export_torchscript(model, path, inputs, dynamic_batch=False, tolerance=DEFAULT_TOLERANCE,
                       compare=compare_outputs, log=print):
    """Export ``model`` to TorchScript by tracing, and check it with ``torch.jit.load``.

    ``torch.jit.script`` cannot compile these models (MMEngine's models and data
    preprocessors take untyped dicts and lists), so the model is traced. Tracing records sizes
    read from the input as graph operations, so the batch stays free; the input-shape checks
    of the RepMLP blocks become constants (hence no TracerWarning is shown: C, H and W are
    fixed by the config anyway). Tracing would freeze a Python branch on tensor values to the
    example's branch, so the model is captured with :func:`export_program` first, which
    refuses such code as for the other formats. ``torch.jit.trace`` is deprecated in torch
    2.14 (it warns so) but still exports these models exactly.

    Args:
        model (nn.Module): the model, in training or deploy form (converted in place).
        path (str): the TorchScript file to write.
        inputs (Tensor): the example and check batch ``(N, C, H, W)``.
        dynamic_batch (bool): check the traced module on a second batch size too.
        tolerance (float): the largest accepted difference relative to the largest output.
        compare (Callable): ``(reference, outputs) -> (max abs, max relative difference)``;
            by default :func:`compare_outputs` (the tools pass their task's).
        log (Callable[[str], None]): where progress lines go.

    Returns:
        ExportResult: what was written and the measured difference.

    Raises:
        InputError: the model cannot be exported, or the check fails; nothing is written then.
    """

    def write(wrapped, tmp):
        export_program(wrapped, inputs, dynamic_batch)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            # check_trace would rerun the model; the saved module is checked after loading.
            traced = torch.jit.trace(wrapped, (inputs, ), check_trace=False)
        # saved through Python's file: TorchScript's own writer aborts the process on a full disk
        serialized = io.BytesIO()
        torch.jit.save(traced, serialized)
        with open(tmp, 'wb') as f:
            f.write(serialized.getbuffer())

    return _export('torchscript', 'to TorchScript (traced)', write, _torchscript_runner, model,
                   path, inputs, dynamic_batch, tolerance, compare, log)


EXPORTERS = {'onnx': export_onnx, 'pt2': export_pt2, 'torchscript': export_torchscript}

