"""Load configs, models and checkpoints for the tools, with one-line errors for bad input.

Models are built through MMEngine's root registry under the scope of the config's task, so
the same code serves MMPretrain classifiers, MMSegmentation segmentors and any other task.
"""
import inspect
import os.path as osp

from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

# forward_raw is one of the helpers the tools use with a loaded model; it lives with the
# model-level deployment code.
from ..deployment import forward_raw  # noqa: F401
from ..tasks import task_of
from ..utils.checkpoint import (
    describe_differences,
    read_checkpoint,
    shapes,
    state_dict_differences,
)
from ..utils.configs import config_dicts
from ..utils.errors import describe_exception
from .cli import ToolError

# Top-level config entries that the Runner or the tools read (not variables of the text).
READ_AFTER_LOADING = frozenset(inspect.signature(Runner.__init__).parameters) | {
    'task', 'runner_type', 'sync_bn', 'custom_imports', 'tta_model', 'tta_pipeline'}


def load_config(path, cfg_options=None):
    """Read a config file and apply ``--cfg-options`` style overrides."""
    if not osp.isfile(path):
        raise ToolError(f'config {path} does not exist; pass the path of a config .py file')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:
        raise ToolError(f'cannot read config {path}: {describe_exception(exc)}; is it an '
                        'MMEngine config (Python) file?') from exc
    merge_cfg_options(cfg, cfg_options)
    if not isinstance(cfg.get('model'), dict):
        raise ToolError(f'config {path} defines no `model`; pass a model config (e.g. one '
                        'under configs/)')
    return cfg


def merge_cfg_options(cfg, options):
    """Apply ``--cfg-options`` to ``cfg``.

    Raises:
        ToolError: an option sets a top-level variable of the config whose value the config
            copied into other entries when it was read (``num_classes={{_base_.n}}``,
            ``data_root=data_root``): setting it alone would change nothing. The message
            names the entries to set instead.
    """
    for key, value in (options or {}).items():
        old = cfg.get(key) if '.' not in key and key not in READ_AFTER_LOADING else None
        if not isinstance(old, (int, float, str)) or isinstance(old, bool) or old == value:
            continue
        copies = [f'{path}.{name}' for path, node in config_dicts(cfg.to_dict())
                  for name, entry in node.items()
                  if path and entry == old and type(entry) is type(old)]
        if copies:
            settings = ' '.join(f'{copy.lstrip(".")}={value}' for copy in copies)
            raise ToolError(f'--cfg-options {key}={value}: {key} is a variable of the config '
                            f'whose value {old!r} was copied into {len(copies)} entries when the '
                            'config was read, so setting it changes nothing; set those entries '
                            f'instead: --cfg-options {settings}')
    if options:
        cfg.merge_from_dict(options)
    return cfg


def model_config(cfg):
    """``cfg.model`` with the config's top-level ``data_preprocessor`` (MMPretrain configs
    keep the normalisation there), as MMEngine's Runner and ``mmpretrain.get_model`` build
    it."""
    if cfg.get('data_preprocessor') is None or 'data_preprocessor' in cfg.model:
        return cfg.model
    return ConfigDict(cfg.model, data_preprocessor=cfg.data_preprocessor)


def build_model(cfg):
    """Build ``cfg.model`` (:func:`model_config`) in its task's registry scope, in eval
    mode. The process's default scope is left as it was (a segmentation model built here
    must not make later MMPretrain lookups search MMSeg's registries)."""
    from mmengine.registry import MODELS, DefaultScope

    if not cfg.get('model'):
        raise ToolError(f'config {cfg.filename} has no `model` to build')
    task = task_of(cfg)
    task.check_available()
    try:
        with DefaultScope.overwrite_default_scope(task.scope(cfg)):
            model = MODELS.build(model_config(cfg))
    except Exception as exc:
        raise ToolError(f'cannot build the model of config {cfg.filename}: '
                        f'{describe_exception(exc)}') from exc
    return model.eval()


def state_dict_mismatch(model, state_dict):
    """One line naming how ``state_dict`` differs from ``model``'s, or None when it fits."""
    return describe_differences(state_dict_differences(shapes(model.state_dict()),
                                                       shapes(state_dict)))


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


def input_shape(cfg, shape=None):
    """The ``(C, H, W)`` of one input of ``cfg.model``, as its task reads it (see
    :meth:`mmrepmlp.tasks.Task.input_shape`)."""
    return task_of(cfg).input_shape(cfg, shape)

