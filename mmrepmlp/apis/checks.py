"""Checks of the tools' input that MMEngine would find late or not at all: the data paths of a
config, its pretrained checkpoints, and whether a checkpoint can be resumed from or fits the
model. Each failure is one :class:`~mmrepmlp.apis.ToolError` naming the problem and the fix."""
import os
import os.path as osp
import re

from ..tasks import task_of
from ..utils.configs import config_dicts
from ..utils.errors import InputError
from ..utils.files import remove_temporaries
from .build import read_checkpoint, state_dict_mismatch
from .cli import ToolError

# What MMEngine's CheckpointHook writes into the work dir.
RUNNER_CHECKPOINT = re.compile(r'(iter|epoch)_(\d+)\.pth')
CHECKPOINT_HOOK_FILES = r'((iter|epoch|best)_.*\.pth|last_checkpoint)'


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
    _check_training_state(read_checkpoint(path)[0], path, what)


def _check_training_state(checkpoint, path, what):
    meta = checkpoint.get('meta') or {}
    needed = {'meta.iter and meta.epoch': 'iter' in meta and 'epoch' in meta,
              'message_hub': 'message_hub' in checkpoint, 'optimizer': 'optimizer' in checkpoint}
    lacking = [name for name, present in needed.items() if not present]
    if lacking and meta.get('deploy'):
        raise ToolError(f'{what}: {path} holds a deploy checkpoint, whose merged weights the '
                        f'training form of the model cannot load; resume from the training '
                        f'checkpoint it was converted from (work_dir/iter_N.pth or '
                        f'epoch_N.pth), or test and export it with its *_deploy.py config')
    if lacking:
        raise ToolError(f'{what}: {path} holds weights only, without the training state '
                        f'resuming needs ({", ".join(lacking)}); resume from a checkpoint the '
                        f'training wrote (work_dir/iter_N.pth or epoch_N.pth), or start a new '
                        f'training from these weights with --cfg-options load_from={path}')


def resume_checkpoint(work_dir, log=print):
    """The checkpoint ``--resume`` alone continues from, or None when there is none (a new
    training starts then).

    That is the one ``work_dir/last_checkpoint`` names. When that file is missing, empty or
    names a checkpoint that does not load (a run killed while saving), it is the newest
    ``iter_N.pth``/``epoch_N.pth`` of its folder that loads, and ``log`` says so.

    Raises:
        ToolError: checkpoints exist and none of them can be resumed from.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = ''
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
    if '://' in named:
        return named  # not a local file: MMEngine's loader reads it
    if named:
        try:
            checkpoint, _ = read_checkpoint(named)
        except InputError as error:
            problem = f'{pointer} names {named}, which does not load ({error})'
        else:  # it loads: no failed save, but it must hold the training state
            _check_training_state(checkpoint, named, '--resume (the latest checkpoint)')
            return named
    else:
        problem = f'{pointer} is {"empty" if osp.isfile(pointer) else "missing"}'
    return _newest_resumable(osp.dirname(named) or work_dir, problem, log)


def _newest_resumable(folder, problem, log):
    names = os.listdir(folder) if osp.isdir(folder) else []
    steps = {osp.join(folder, name): int(match[2]) for name in names
             if (match := RUNNER_CHECKPOINT.fullmatch(name))}
    skipped = []
    for path in sorted(steps, key=steps.get, reverse=True):
        try:
            check_resumable(path, '--resume')
        except InputError as error:
            skipped.append(f'{osp.basename(path)} ({error})')
            continue
        not_loaded = f'; {len(skipped)} newer do not load: {"; ".join(skipped)}' if skipped else ''
        log(f'--resume: {problem}; resuming from {path}, the newest checkpoint of {folder} that '
            f'loads{not_loaded}')
        return path
    if skipped:
        raise ToolError(f'--resume: {problem}, and no checkpoint of {folder} loads: '
                        f'{"; ".join(skipped)}; resume from another checkpoint with --resume '
                        'CHECKPOINT, or start a new training without --resume')
    log(f'--resume: {problem}, and {folder} holds no checkpoint: starting a new training')
    return None


def remove_partial_saves(work_dir, log=print):
    """Remove the partial temporary files of checkpoints and ``last_checkpoint`` that a run
    killed while saving left in ``work_dir`` (see :mod:`mmrepmlp.compat.checkpoint_saving`);
    call it when training starts, before anything is saved."""
    removed = remove_temporaries(work_dir, CHECKPOINT_HOOK_FILES)
    if removed:
        log(f'removed {len(removed)} partial files of an interrupted save: {", ".join(removed)}')
    return removed


def check_resume_fits(runner, cfg):
    """Before ``runner.train()``: refuse to resume from a checkpoint of another model (MMEngine
    would load what fits and train a partly random model)."""
    from mmengine.runner import find_latest_checkpoint

    if not cfg.get('resume'):
        return
    checkpoint = cfg.get('load_from') or find_latest_checkpoint(cfg.work_dir)
    if checkpoint and '://' not in checkpoint:
        check_checkpoint_fits(runner, checkpoint)


def check_load_from_fits(runner, cfg, strict=True):
    """Before ``runner.train()`` of a new training: refuse a ``load_from`` checkpoint of another
    model (MMEngine would load what fits and train from partly random weights with exit 0),
    naming the keys; with ``strict`` False (``--non-strict``), warn and load what fits."""
    checkpoint = cfg.get('load_from')
    if checkpoint and not cfg.get('resume') and '://' not in checkpoint:
        check_checkpoint_fits(runner, checkpoint, strict)


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
