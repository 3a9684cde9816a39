"""Convert a training-time checkpoint to its deploy form, verify it, and save it with its config.

Works for any task (classifier, segmentor, face model): every re-parameterizable module of the
model is converted by :func:`mmrepmlp.deployment.convert_model`, the task heads are kept; this
module adds the config, checkpoint and file handling around it.
The deploy config is the training config with ``deploy=True`` on every module config whose
class is re-parameterizable; the verification rebuilds the model from that config, loads the
converted weights strictly and compares its output with the training-time model's, so what is
saved is known to load with ``tools/test.py`` and ``mmpretrain.get_model``.
"""
import copy
import inspect
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import List, Optional

import torch

from ..deployment import DEFAULT_TOLERANCE, convert_model, invalid_values, random_batch, raw_outputs
from ..reparam import CONVERSION_METHODS
from ..tasks import task_of
from ..utils.configs import config_dicts
from ..utils.files import check_not_overwriting, check_writable, staged_files
from .build import (
    build_model,
    input_shape,
    load_config,
    load_weights,
    read_checkpoint,
    state_dict_mismatch,
)
from .cli import ToolError

VERIFY_BATCH = 2


@dataclass
class DeployResult:
    """What :func:`convert_checkpoint` did.

    ``already_deployed`` is True when the checkpoint was in deploy form already; then nothing
    was converted or written and the paths are None.
    """
    checkpoint: Optional[str] = None
    config: Optional[str] = None
    converted: List[str] = field(default_factory=list)
    max_abs_diff: Optional[float] = None
    max_rel_diff: Optional[float] = None
    already_deployed: bool = False


def default_output_paths(config_path, checkpoint_path, out=None):
    """``(deploy checkpoint, deploy config)``: ``<ckpt>_deploy.pth`` unless ``out`` is given
    (a folder: that file name in it), and ``<config name>_deploy.py`` next to it."""
    default_name = osp.splitext(osp.basename(checkpoint_path))[0] + '_deploy.pth'
    if out is None:
        out = osp.join(osp.dirname(checkpoint_path), default_name)
    elif osp.isdir(out) or out.endswith(os.sep):
        out = osp.join(out, default_name)
    config_name = osp.splitext(osp.basename(config_path))[0] + '_deploy.py'
    return out, osp.join(osp.dirname(osp.abspath(out)), config_name)


def _registered_class(type_):
    """The class a module config's ``type`` names, in the current default scope."""
    from mmengine.registry import MODELS

    if inspect.isclass(type_):
        return type_
    try:
        with MODELS.switch_scope_and_registry(None) as registry:
            return registry.get(type_)
    except Exception:  # an unknown scope prefix raises instead of returning None
        return None


def _is_reparameterizable(cls):
    if cls is None or not any(callable(getattr(cls, name, None)) for name in CONVERSION_METHODS):
        return False
    try:
        return 'deploy' in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def make_deploy_config(cfg):
    """A copy of ``cfg`` with ``deploy=True`` on every re-parameterizable module config (its
    ``type`` looked up in the registry scope of the config's task).

    Returns:
        tuple[Config, list[str]]: the deploy config and the paths of the flagged entries,
        e.g. ``['model.backbone']``.
    """
    from mmengine.registry import DefaultScope

    deploy_cfg = copy.deepcopy(cfg)
    flagged = []
    with DefaultScope.overwrite_default_scope(task_of(cfg).scope(cfg)):
        for path, node in config_dicts(deploy_cfg.model, 'model'):
            if 'type' in node and _is_reparameterizable(_registered_class(node['type'])):
                node['deploy'] = True
                flagged.append(path)
    return deploy_cfg, flagged


def _rebuild_deploy_model(deploy_cfg, deploy_state):
    """The model of the deploy config with the converted weights, loaded strictly."""
    deploy_model = build_model(deploy_cfg)
    mismatch = state_dict_mismatch(deploy_model, deploy_state)
    if mismatch:
        raise ToolError(f'the deploy config does not rebuild the converted model ({mismatch}); '
                        'every re-parameterizable module needs a `deploy` argument')
    deploy_model.load_state_dict(deploy_state)
    return deploy_model


def _save(checkpoint, state_dict, deploy_cfg, out_checkpoint, out_config):
    """Write the deploy checkpoint and config, committed together (both or neither)."""
    meta = dict(checkpoint.get('meta') or {})
    # MMEngine checkpoints embed their config; the deploy one must describe the deploy model.
    meta.update(cfg=deploy_cfg.pretty_text, deploy=True)
    with staged_files([out_checkpoint, out_config]) as (tmp_checkpoint, tmp_config):
        torch.save({'meta': meta, 'state_dict': state_dict}, tmp_checkpoint)
        with open(tmp_config, 'w') as f:
            f.write(deploy_cfg.pretty_text)


def _already_deployed(checkpoint, state_dict, train_model, deploy_cfg):
    """True when the checkpoint fits the deploy model rather than the training one."""
    if (checkpoint.get('meta') or {}).get('deploy'):
        return True
    if state_dict_mismatch(train_model, state_dict) is None:
        return False
    return state_dict_mismatch(build_model(deploy_cfg), state_dict) is None


def convert_checkpoint(config_path, checkpoint_path, out=None, verify=True,
                       tolerance=DEFAULT_TOLERANCE, shape=None, log=print):
    """Convert a training-time checkpoint and write the deploy checkpoint and config.

    Args:
        config_path (str): the training config.
        checkpoint_path (str): a checkpoint of that config.
        out (str, optional): the deploy checkpoint; defaults to ``<checkpoint>_deploy.pth``.
            The deploy config ``<config name>_deploy.py`` goes next to it.
        verify (bool): compare the outputs of both forms on a random batch.
        tolerance (float): the largest accepted difference relative to the largest output.
        shape (tuple[int, int], optional): the ``(H, W)`` of the verification batch; by default
            the config's input size.
        log (Callable[[str], None]): where progress lines go.

    Returns:
        DeployResult: what was written and the measured difference.

    Raises:
        InputError: bad input (a :class:`ToolError` for files and configs), or outputs differ
            beyond ``tolerance``; nothing is written then.
    """
    out_checkpoint, out_config = default_output_paths(config_path, checkpoint_path, out)
    check_not_overwriting((out_checkpoint, out_config), (checkpoint_path, config_path))
    for path in (out_checkpoint, out_config):
        check_writable(path)
    cfg = load_config(config_path)
    task = task_of(cfg)
    model = build_model(cfg)
    deploy_cfg, flagged = make_deploy_config(cfg)
    checkpoint, state_dict = read_checkpoint(checkpoint_path)
    if _already_deployed(checkpoint, state_dict, model, deploy_cfg):
        log(f'{checkpoint_path} is already in deploy form: nothing converted or written')
        return DeployResult(already_deployed=True)
    load_weights(model, state_dict, checkpoint_path, config_path)
    problems = invalid_values(model)
    if problems:
        raise ToolError(f'checkpoint {checkpoint_path} holds invalid values in '
                        f'{len(problems)} tensors ({", ".join(problems[:4])}); the training '
                        'diverged or the file is damaged: convert another checkpoint')

    if verify:
        inputs = random_batch(VERIFY_BATCH, input_shape(cfg, shape))
        reference = raw_outputs(model, inputs)
    converted = convert_model(model, log)
    if not converted:
        raise ToolError(f'the model of {config_path} has no re-parameterizable module in '
                        'training form; there is nothing to convert')
    log(f'converted {len(converted)} modules; deploy flags set on: {", ".join(flagged)}')
    deploy_state = model.state_dict()
    deploy_model = _rebuild_deploy_model(deploy_cfg, deploy_state)

    result = DeployResult(out_checkpoint, out_config, converted)
    if verify:
        result.max_abs_diff, result.max_rel_diff = task.compare_outputs(
            reference, raw_outputs(deploy_model, inputs))
        log(f'verify on a random batch {tuple(inputs.shape)}: max abs difference '
            f'{result.max_abs_diff:.3e}, max relative difference {result.max_rel_diff:.3e} '
            f'(tolerance {tolerance:g})')
        if not result.max_rel_diff <= tolerance:  # NaN fails too
            raise ToolError(f'deploy outputs differ from training outputs by '
                            f'{result.max_rel_diff:.3e} relative (tolerance {tolerance:g}, '
                            'NaN means an output is not finite); nothing written')
    _save(checkpoint, deploy_state, deploy_cfg, out_checkpoint, out_config)
    log(f'saved {out_checkpoint} and {out_config}')
    return result
