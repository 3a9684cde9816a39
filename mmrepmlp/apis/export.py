"""Export a checkpoint of a config with the writers of :mod:`mmrepmlp.deployment.export`: the
config, checkpoint and output-path side of ``tools/deployment/export.py``."""
import os.path as osp

from ..deployment import (
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    EXPORTERS,
    EXTENSIONS,
    check_output_path,
    random_batch,
)
from ..tasks import task_of
from ..utils.files import check_not_overwriting
from .build import input_shape, load_model
from .cli import ToolError

DEFAULT_BATCH = 2


def default_output_path(checkpoint_path, fmt):
    """``<checkpoint without extension>.onnx`` / ``.pt2`` / ``.ts``, next to the checkpoint."""
    return osp.splitext(checkpoint_path)[0] + EXTENSIONS[fmt]


def export_checkpoint(config_path, checkpoint_path, fmt, out=None, shape=None,
                      batch=DEFAULT_BATCH, dynamic_batch=False, opset=DEFAULT_OPSET,
                      tolerance=DEFAULT_TOLERANCE, log=print):
    """Load a checkpoint of a config and export it in one of :data:`EXTENSIONS`' formats.

    Args:
        config_path (str): the config (training or deploy form).
        checkpoint_path (str): a checkpoint of that config.
        fmt (str): ``'onnx'``, ``'pt2'`` or ``'torchscript'``.
        out (str, optional): the artifact; defaults to :func:`default_output_path`.
        shape (tuple[int, int], optional): the ``(H, W)`` of the example batch; by default the
            config's input size.
        batch (int): the example batch size.
        dynamic_batch (bool): make the batch axis dynamic.
        opset (int): the ONNX opset (ONNX only).
        tolerance (float): the largest accepted difference relative to the largest output.
        log (Callable[[str], None]): where progress lines go.

    Returns:
        ExportResult: what was written and the measured difference.

    Raises:
        InputError: bad input (a :class:`ToolError` for files and configs), an unexportable
            model or a failed check; nothing is written.
    """
    if fmt not in EXPORTERS:
        raise ToolError(f'unknown export format {fmt!r}; use one of {sorted(EXPORTERS)}')
    if batch < 1:
        raise ToolError(f'the batch size must be 1 or more, got {batch}')
    out = out or default_output_path(checkpoint_path, fmt)
    check_not_overwriting([out], [config_path, checkpoint_path])
    check_output_path(out, fmt)
    model, cfg = load_model(config_path, checkpoint_path)
    inputs = random_batch(batch, input_shape(cfg, shape))
    options = {'opset': opset} if fmt == 'onnx' else {}
    return EXPORTERS[fmt](model, out, inputs, dynamic_batch=dynamic_batch, tolerance=tolerance,
                          compare=task_of(cfg).compare_outputs, log=log, **options)
