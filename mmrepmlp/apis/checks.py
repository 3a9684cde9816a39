"""Checks of the tools' input that MMEngine would find late or not at all: the data paths of a
config, its pretrained checkpoints, and whether a checkpoint can be resumed from or fits the
model. Each failure is one :class:`~mmrepmlp.apis.ToolError` naming the problem and the fix."""
import os.path as osp

from ..tasks import task_of
from ..utils.configs import config_dicts
from .build import read_checkpoint, state_dict_mismatch
from .cli import ToolError


def check_data_paths(cfg, loaders):
    """Raise one :class:`ToolError` listing every missing data path of ``loaders``, each with
    the config key to set; then let the task check the files its samples need
    (:meth:`~mmrepmlp.tasks.Task.check_data_files`)."""
    missing = {}
    task = task_of(cfg)
    for key, path in task.data_paths(cfg, loaders):
        if not osp.exists(path):
            missing.setdefault(path, []).append(key)
    if missing:
        listed = '; '.join(f'{path} (from {", ".join(keys)})' for path, keys in missing.items())
        keys = sorted({key.split('.')[0] for keys in missing.values() for key in keys})
        hint = ' '.join(f'{key}.dataset.data_root=...' for key in keys)
        raise ToolError(f'missing data: {listed}; put the data set there or point the config '
                        f'at it, e.g. --cfg-options {hint}')
    task.check_data_files(cfg, loaders)


def pretrained_checkpoints(model_cfg):
    """``[(config key, checkpoint)]`` of the ``Pretrained`` init configs of a model config."""
    return [(f'{path}.checkpoint', node['checkpoint'])
            for path, node in config_dicts(model_cfg, 'model')
            if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str)]


def check_pretrained_checkpoints(cfg):
    """Raise :class:`ToolError` naming every local pretrained checkpoint of the model that
    does not exist (found only when the weights are initialized, after the Runner starts)."""
    missing = [(key, path) for key, path in pretrained_checkpoints(cfg.model)
               if '://' not in path and not osp.isfile(path)]
    if missing:
        listed = '; '.join(f'{path} (from {key})' for key, path in missing)
        init_cfg = missing[0][0].rsplit('.', 1)[0]
        raise ToolError(f'missing pretrained checkpoint: {listed}; put the checkpoint there or '
                        f'set --cfg-options {missing[0][0]}=..., start from what fits of '
                        f'another model with {init_cfg}.strict=False added, or train from '
                        f'scratch with --cfg-options {init_cfg}=None')


def check_resumable(path, what):
    """Raise :class:`ToolError` unless ``path`` is a checkpoint the Runner wrote in training."""
    checkpoint, _ = read_checkpoint(path)
    meta = checkpoint.get('meta') or {}
    needed = {'meta.iter and meta.epoch': 'iter' in meta and 'epoch' in meta,
              'message_hub': 'message_hub' in checkpoint, 'optimizer': 'optimizer' in checkpoint}
    lacking = [name for name, present in needed.items() if not present]
    if lacking:
        kind = 'a deploy checkpoint' if meta.get('deploy') else 'weights only'
        raise ToolError(f'{what}: {path} holds {kind}, without the training state resuming '
                        f'needs ({", ".join(lacking)}); resume from a checkpoint the training '
                        f'wrote (work_dir/iter_N.pth or epoch_N.pth), or start a new training '
                        f'from these weights with --cfg-options load_from={path}')


def check_resume_fits(runner, cfg):
    """Before ``runner.train()``: refuse to resume from a checkpoint of another model (MMEngine
    would load what fits and train a partly random model)."""
    from mmengine.runner import find_latest_checkpoint

    if not cfg.get('resume'):
        return
    checkpoint = cfg.get('load_from') or find_latest_checkpoint(cfg.work_dir)
    if checkpoint and '://' not in checkpoint:
        check_checkpoint_fits(runner, checkpoint)


def check_checkpoint_fits(runner, checkpoint_path, strict=True):
    """Refuse a checkpoint that does not fit the Runner's model (MMEngine would load what
    fits and test a partly random model), naming the keys; with ``strict`` False, warn.

    The inner model of a DDP or test-time augmentation wrapper is compared, as MMEngine loads
    the weights into it.
    """
    from mmengine.model import BaseTTAModel, is_model_wrapper

    model = runner.model
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    mismatch = state_dict_mismatch(model, read_checkpoint(checkpoint_path)[1])
    if mismatch and strict:
        raise ToolError(f'checkpoint {checkpoint_path} does not fit the model of the config: '
                        f'{mismatch}; pass the config it was trained with (a deploy '
                        'checkpoint needs the *_deploy.py config), or --non-strict to load '
                        'what fits')
    if mismatch:
        runner.logger.warning(f'--non-strict: loading what fits of {checkpoint_path}: '
                              f'{mismatch}')
