"""Export a checkpoint of a config with the writers of :mod:`mmrepmlp.deployment.export`: the
config, checkpoint and output-path side of ``tools/deployment/export.py``, and the input an
exported model takes (:func:`input_lines`, :func:`image_to_input`)."""
import os.path as osp

import numpy as np
import torch
from mmcv import imread

from ..deployment import (
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    EXPORTERS,
    EXTENSIONS,
    check_output_path,
    random_batch,
)
from ..deployment.export import INPUT_NAME
from ..tasks import task_of
from ..utils.errors import describe_exception
from ..utils.files import check_not_overwriting
from .build import build_model, input_shape, load_config, load_model
from .cli import ToolError

# One image, the usual deployment call; a dynamic batch axis needs an example of 2 or more
# (torch.export keeps an axis of size 1 fixed).
DEFAULT_BATCH = 1
DYNAMIC_EXAMPLE_BATCH = 2


def default_output_path(checkpoint_path, fmt):
    """``<checkpoint without extension>.onnx`` / ``.pt2`` / ``.ts``, next to the checkpoint."""
    return osp.splitext(checkpoint_path)[0] + EXTENSIONS[fmt]


def export_checkpoint(config_path, checkpoint_path, fmt, out=None, shape=None, batch=None,
                      dynamic_batch=False, opset=DEFAULT_OPSET, tolerance=DEFAULT_TOLERANCE,
                      log=print):
    """Load a checkpoint of a config and export it in one of :data:`EXTENSIONS`' formats.

    Args:
        config_path (str): the config (training or deploy form).
        checkpoint_path (str): a checkpoint of that config.
        fmt (str): ``'onnx'``, ``'pt2'`` or ``'torchscript'``.
        out (str, optional): the artifact; defaults to :func:`default_output_path`.
        shape (tuple[int, int], optional): the ``(H, W)`` of the example batch; by default the
            config's input size.
        batch (int, optional): the example batch size; by default :data:`DEFAULT_BATCH`
            (:data:`DYNAMIC_EXAMPLE_BATCH` with ``dynamic_batch``).
        dynamic_batch (bool): make the batch axis dynamic.
        opset (int): the ONNX opset (ONNX only).
        tolerance (float): the largest accepted difference relative to the largest output.
        log (Callable[[str], None]): where progress lines go; the last two say what the
            artifact takes (:func:`input_lines`).

    Returns:
        ExportResult: what was written and the measured difference.

    Raises:
        InputError: bad input (a :class:`ToolError` for files and configs), an unexportable
            model or a failed check; nothing is written.
    """
    if fmt not in EXPORTERS:
        raise ToolError(f'unknown export format {fmt!r}; use one of {sorted(EXPORTERS)}')
    if batch is None:
        batch = DYNAMIC_EXAMPLE_BATCH if dynamic_batch else DEFAULT_BATCH
    if batch < 1:
        raise ToolError(f'the batch size must be 1 or more, got {batch}')
    out = out or default_output_path(checkpoint_path, fmt)
    check_not_overwriting([out], [config_path, checkpoint_path])
    check_output_path(out, fmt)
    model, cfg = load_model(config_path, checkpoint_path)
    inputs = random_batch(batch, input_shape(cfg, shape))
    options = {'opset': opset} if fmt == 'onnx' else {}
    preprocessor = model.data_preprocessor
    result = EXPORTERS[fmt](model, out, inputs, dynamic_batch=dynamic_batch,
                            tolerance=tolerance, compare=task_of(cfg).compare_outputs, log=log,
                            **options)
    for line in input_lines(preprocessor, tuple(inputs.shape), dynamic_batch):
        log(line)
    return result


def input_lines(preprocessor, shape, dynamic_batch=False):
    """Two lines saying what an exported model takes: the input's name, dtype and shape, and
    the normalisation of its data preprocessor (which the artifact does not contain)."""
    batch = 'N (dynamic)' if dynamic_batch else str(shape[0])
    lines = [f"input '{INPUT_NAME}': float32 ({', '.join([batch, *map(str, shape[1:])])})"]
    to_rgb = getattr(preprocessor, 'to_rgb', getattr(preprocessor, 'channel_conversion', False))
    steps = [f'the test pipeline of the config (to {shape[-2]}x{shape[-1]})',
             'RGB channel order' if to_rgb else 'the channel order of the decoded image']
    if getattr(preprocessor, '_enable_normalize', False):
        steps.append(f'(pixel - mean) / std with mean {_values(preprocessor.mean)}, std '
                     f'{_values(preprocessor.std)}')
    lines.append(f'preprocessing: {", ".join(steps)}; '
                 'mmrepmlp.apis.export.image_to_input(CONFIG, IMAGE) does it')
    return lines


def _values(buffer):
    return [round(float(value), 4) for value in buffer.flatten()]


def image_to_input(config_path, image_path):
    """The input an exported model of ``config_path`` takes for one image file: the config's
    test pipeline, then its data preprocessor (channel order, normalisation), as a float32
    array ``(1, C, H, W)``.

    Raises:
        InputError: the config or the image cannot be read.
    """
    cfg = load_config(config_path)
    try:
        image = imread(image_path)
    except Exception as exc:
        raise ToolError(f'cannot read image {image_path} ({describe_exception(exc)}); give an '
                        'image file') from exc
    if image is None:
        raise ToolError(f'{image_path} is not an image file (it does not decode); give a '
                        '.jpg or .png')
    sample = task_of(cfg).image_pipeline(cfg)(image)
    preprocessor = build_model(cfg).data_preprocessor
    with torch.no_grad():
        batch = preprocessor(dict(inputs=[sample['inputs']],
                                  data_samples=[sample['data_samples']]), False)['inputs']
    return np.ascontiguousarray(batch.float().numpy())
