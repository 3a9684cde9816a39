"""Load configs, models and checkpoints for the tools, with one-line errors for bad input.

Models are built through MMEngine's root registry under the config's ``default_scope``, so
the same code serves MMPretrain classifiers, MMSegmentation segmentors and any other task.
"""
import os.path as osp

import torch
from mmengine.config import Config

from .errors import ToolError

# Transforms whose output has a fixed size, and the argument that holds it as (w, h) or int.
_FIXED_SIZE_TRANSFORMS = {
    'CenterCrop': 'crop_size',
    'RandomCrop': 'crop_size',
    'RandomResizedCrop': 'scale',
    'Resize': 'scale',
}


def describe_exception(exc, limit=200):
    """``TypeName: first line of the message``, cut to ``limit`` characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f'{type(exc).__name__}: {lines[0] if lines else "(no message)"}'
    return text if len(text) <= limit else text[:limit - 3] + '...'


def load_config(path, cfg_options=None):
    """Read a config file and apply ``--cfg-options`` style overrides."""
    if not osp.isfile(path):
        raise ToolError(f'config {path} does not exist; pass the path of a config .py file')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:
        raise ToolError(f'cannot read config {path}: {describe_exception(exc)}') from exc
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg):
    """Build ``cfg.model`` in the config's default scope, in eval mode."""
    from mmengine.registry import MODELS, init_default_scope

    if not cfg.get('model'):
        raise ToolError(f'config {cfg.filename} has no `model` to build')
    init_default_scope(cfg.get('default_scope') or 'mmpretrain')
    try:
        model = MODELS.build(cfg.model)
    except Exception as exc:
        raise ToolError(f'cannot build the model of config {cfg.filename}: '
                        f'{describe_exception(exc)}') from exc
    return model.eval()


def read_checkpoint(path):
    """Read a checkpoint with MMEngine's loader.

    Returns:
        tuple[dict, dict]: the whole checkpoint (``{'state_dict': ...}`` when the file held a
        bare state dict) and its state dict, with any DataParallel ``module.`` prefix removed.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    if not osp.isfile(path):
        raise ToolError(f'checkpoint {path} does not exist; pass the path of a .pth file')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu', logger=None)
    except Exception as exc:
        raise ToolError(f'cannot read checkpoint {path} ({describe_exception(exc)}); '
                        'is it a complete checkpoint file?') from exc
    if not isinstance(checkpoint, dict):
        raise ToolError(f'checkpoint {path} holds a {type(checkpoint).__name__}, not a dict of '
                        'weights; save model.state_dict() or an MMEngine checkpoint')
    if 'state_dict' not in checkpoint and 'model' not in checkpoint:
        checkpoint = {'state_dict': checkpoint}
    state_dict = checkpoint.get('state_dict', checkpoint.get('model'))
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ToolError(f'checkpoint {path} has no state dict of tensors under `state_dict` or '
                        '`model`')
    state_dict = {k.removeprefix('module.'): v for k, v in state_dict.items()}
    return checkpoint, state_dict


def state_dict_mismatch(model, state_dict):
    """Describe how ``state_dict`` differs from ``model``'s, or return None when it fits.

    BN's ``num_batches_tracked`` may be absent (PyTorch fills it in), as in many released
    checkpoints.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected
               if k not in state_dict and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in expected]
    reshaped = [f'{k} {tuple(state_dict[k].shape)} vs {expected[k]}' for k in expected
                if k in state_dict and tuple(state_dict[k].shape) != expected[k]]
    problems = [f'{len(items)} {what} (e.g. {", ".join(items[:2])})'
                for items, what in ((missing, 'missing keys'), (unexpected, 'unexpected keys'),
                                    (reshaped, 'keys with another shape (checkpoint vs model)'))
                if items]
    return '; '.join(problems) or None


def load_weights(model, state_dict, checkpoint_path, config_path):
    """Load ``state_dict`` into ``model`` strictly, naming any mismatch in one line."""
    mismatch = state_dict_mismatch(model, state_dict)
    if mismatch:
        raise ToolError(f'checkpoint {checkpoint_path} does not fit the model of config '
                        f'{config_path}: {mismatch}; pass the config it was trained with')
    model.load_state_dict(state_dict, strict=True)
    return model


def load_model(config_path, checkpoint_path=None, cfg_options=None):
    """Build the model of a config and load a checkpoint into it (eval mode, CPU).

    Returns:
        tuple[nn.Module, Config]: the model and its config.
    """
    cfg = load_config(config_path, cfg_options)
    model = build_model(cfg)
    if checkpoint_path is not None:
        load_weights(model, read_checkpoint(checkpoint_path)[1], checkpoint_path, config_path)
    return model, cfg


def _size_hw(value):
    """An int or a ``(w, h)`` pair (the OpenMMLab transforms' order) -> ``(h, w)``."""
    if isinstance(value, int):
        return value, value
    w, h = value
    return h, w


def _test_pipeline(cfg):
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = loader.get('dataset', {})
    # Wrapper datasets (RepeatDataset, ...) keep the real one under `dataset`.
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset.get('pipeline') or cfg.get('test_pipeline') or []


def input_shape(cfg, shape=None):
    """The ``(C, H, W)`` of one input of ``cfg.model``.

    ``shape`` ``(H, W)`` wins; otherwise the backbone's ``img_size`` (RepMLP backbones are
    built for one input size), otherwise the last fixed-size crop or resize of the test
    pipeline.
    """
    backbone = cfg.model.get('backbone') or {}
    channels = backbone.get('in_channels', 3)
    if shape is not None:
        return (channels, *shape)
    img_size = backbone.get('img_size')  # (H, W), unlike the transforms' (w, h)
    if img_size is not None:
        return (channels, *((img_size, img_size) if isinstance(img_size, int) else img_size))
    for transform in reversed(_test_pipeline(cfg)):
        key = _FIXED_SIZE_TRANSFORMS.get(str(transform.get('type')).split('.')[-1])
        if key and transform.get(key) is not None and not transform.get('keep_ratio'):
            return (channels, *_size_hw(transform[key]))
    raise ToolError(f'cannot tell the input size of config {cfg.filename} (no backbone '
                    'img_size, no fixed-size crop in the test pipeline); pass --shape H W')


def forward_raw(model, inputs):
    """The model's raw network output on a batch, without data pre- or post-processing."""
    from mmengine.model import BaseModel

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
