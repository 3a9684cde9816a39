"""Turn the arguments of ``tools/train.py`` and ``tools/test.py`` into a Runner config.

The arguments are MMPretrain's. What differs between tasks (collate, visualization, TTA, what
``test.py --out`` writes) comes from the config's task (:func:`mmrepmlp.tasks.task_of`).

Before any Runner is built, the data paths of the config and the checkpoint are checked
(:mod:`.checks`), so that bad input ends with one line naming the problem and the fix.
Without CUDA the config is adapted so that it still runs, on one CPU process or several
(``--launcher pytorch``): SyncBN becomes BN, the process group uses gloo, memory is not
pinned, and ``--amp`` is refused.
"""
import os
import os.path as osp

import torch
from mmengine.config import ConfigDict

from ..tasks import task_of
from ..utils.configs import config_dicts
from ..utils.files import check_not_overwriting
from .build import merge_cfg_options
from .checks import (
    check_data_paths,
    check_pretrained_checkpoints,
    check_resumable,
    resume_checkpoint,
)
from .cli import ToolError

# How far the batch may be from the one the learning rate was tuned for before train.py warns.
BATCH_RATIO_WARNED = 2
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')
TRAIN_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def replace_sync_bn(node):
    """Replace every SyncBN norm config in ``node`` (dicts and lists, recursively) by BN."""
    for _, config in config_dicts(node):
        if config.get('type') in SYNC_BN_TYPES or config.get('type') is torch.nn.SyncBatchNorm:
            config['type'] = 'BN'
    return node


def fit_config_to_device(cfg, amp=False):
    """Adapt ``cfg`` in place to a machine without CUDA (nothing changes when CUDA exists).

    Raises:
        ToolError: ``amp`` was asked for and there is no CUDA device.
    """
    if torch.cuda.is_available():
        return cfg
    if amp:
        raise ToolError('--amp needs a CUDA GPU and torch.cuda.is_available() is False on '
                        'this machine; drop --amp to run in float32 on the CPU')
    # SyncBatchNorm only synchronizes CUDA tensors; plain BN keeps the same keys.
    replace_sync_bn(cfg.model)
    cfg.pop('sync_bn', None)
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'  # NCCL needs GPUs
    return cfg


def set_work_dir(cfg, work_dir, config_path):
    """``--work-dir`` wins, then the config's ``work_dir``, then ./work_dirs/<config name>."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_dataloader_defaults(cfg, fields, persistent_workers, disable=()):
    """Fill MMPretrain's tool defaults and the task's into the dataloaders the config has.

    Call it on the final config (after ``--cfg-options``): memory is pinned only with CUDA,
    and workers persist only when there are workers.

    Args:
        cfg (Config): the config, changed in place.
        fields (Sequence[str]): the dataloader fields, e.g. ``('test_dataloader', )``.
        persistent_workers (bool): whether workers persist by default.
        disable (Sequence[str]): options forced off (``--no-pin-memory`` and the like).
    """
    task_defaults = task_of(cfg).dataloader_defaults()
    for field in fields:
        loader = cfg.get(field)
        if loader is None:
            continue
        merged = ConfigDict(pin_memory=True, **task_defaults)
        if persistent_workers:
            merged.persistent_workers = True
        merged.update(loader)
        for option in disable:
            merged[option] = False
        if not torch.cuda.is_available():
            merged.pin_memory = False
        if merged.get('num_workers', 0) == 0 and 'persistent_workers' in merged:
            merged.persistent_workers = False
        cfg[field] = merged


def prepare_train_config(cfg, args, log=print):
    """Apply the arguments of ``tools/train.py`` (an ``argparse.Namespace``) to ``cfg``;
    ``log`` gets the lines about choices made (which checkpoint ``--resume`` continues from
    when ``last_checkpoint`` does not lead to one)."""
    task_of(cfg).check_available()
    merge_cfg_options(cfg, args.cfg_options)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    _set_resume(cfg, args.resume, log)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ToolError('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) in '
                            'the config (the batch size its learning rate was tuned for)')
        cfg.auto_scale_lr.enable = True
    disable = [option for option, off in (('pin_memory', args.no_pin_memory),
                                          ('persistent_workers', args.no_persistent_workers))
               if off]
    set_dataloader_defaults(cfg, TRAIN_LOADERS, persistent_workers=True, disable=disable)
    fit_config_to_device(cfg, args.amp)
    loaders = [f for f in TRAIN_LOADERS if cfg.get(f) and f != 'test_dataloader']
    check_data_paths(cfg, loaders)
    check_pretrained_checkpoints(cfg)  # MMEngine initializes weights before resuming too
    task_of(cfg).check_training_data(cfg)
    task_of(cfg).add_data_checks(cfg, loaders)
    return cfg


def world_size():
    """The number of training processes as the launchers set it (1 without a launcher)."""
    for variable in ('WORLD_SIZE', 'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'):
        if os.environ.get(variable, '').isdigit():
            return int(os.environ[variable])
    return 1


def batch_size_warning(cfg):
    """The ``warning:`` line ``tools/train.py`` prints when the run's total batch is more
    than 2x away from ``auto_scale_lr.base_batch_size`` (the batch the config's learning rate
    was tuned for) and ``--auto-scale-lr`` is off, else None."""
    scaling = cfg.get('auto_scale_lr') or {}
    base, loader = scaling.get('base_batch_size'), cfg.get('train_dataloader') or {}
    if scaling.get('enable') or not base or not loader.get('batch_size'):
        return None
    processes, per_process = world_size(), loader['batch_size']
    batch = processes * per_process
    if max(batch / base, base / batch) <= BATCH_RATIO_WARNED:
        return None
    lr = ((cfg.get('optim_wrapper') or {}).get('optimizer') or {}).get('lr')
    tuned = f'learning rate {lr:g}' if lr is not None else 'learning rate'
    scaled = f' to {lr * batch / base:g}' if lr is not None else ''
    return (f'warning: the {tuned} was tuned for a batch of {base} (auto_scale_lr.'
            f'base_batch_size) and this run trains with {batch} ({processes} '
            f'process{"es" if processes > 1 else ""} x {per_process}); pass --auto-scale-lr to '
            f'scale it{scaled} (the linear scaling rule), or set the batch of the recipe')


def _set_resume(cfg, resume, log):
    if resume is None:
        return
    if resume == 'auto':
        cfg.load_from = resume_checkpoint(cfg.work_dir, log)
        cfg.resume = cfg.load_from is not None  # else a new training
        return
    if '://' not in resume:
        if not osp.isfile(resume):
            raise ToolError(f'--resume {resume}: the checkpoint does not exist; give an '
                            "existing file, or --resume alone to resume from the work dir's "
                            'latest')
        check_resumable(resume, f'--resume {resume}')
    cfg.resume, cfg.load_from = True, resume


def prepare_test_config(cfg, args):
    """Apply the arguments of ``tools/test.py`` (an ``argparse.Namespace``) to ``cfg``.

    Returns:
        TestOutput: what the task needs to write ``--out`` (see
        :func:`~mmrepmlp.apis.run.run_test`).
    """
    task = task_of(cfg)
    task.check_available()
    merge_cfg_options(cfg, args.cfg_options)
    if args.out_item is not None and args.out is None:
        raise ToolError('--out-item needs --out (the file to write)')
    if not osp.isfile(args.checkpoint):
        raise ToolError(f'checkpoint {args.checkpoint} does not exist; pass the path of a '
                        '.pth file')
    inputs = [args.config, args.checkpoint] + [
        path for _, path in task.data_paths(cfg, ['test_dataloader'])]
    if args.out:
        check_not_overwriting([args.out], inputs)
        task.check_test_output(args.out, args.out_item)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint  # checked against the model first (see run_test)
    if args.amp:
        cfg.test_cfg.fp16 = True
    if args.show or args.show_dir:
        check_not_overwriting([args.show_dir], inputs)
        task.enable_visualization(cfg, args.show, args.show_dir, args.wait_time,
                                  args.interval)
    if args.tta:
        task.enable_tta(cfg)
    set_dataloader_defaults(cfg, ('test_dataloader', ), persistent_workers=False,
                            disable=['pin_memory'] if args.no_pin_memory else [])
    fit_config_to_device(cfg, args.amp)
    check_data_paths(cfg, ['test_dataloader'])
    task.add_data_checks(cfg, ['test_dataloader'])
    return task.prepare_test_output(cfg, args.out, args.out_item) if args.out else None


def dry_run_summary(cfg):
    """The line ``--dry-run`` prints: what would run."""
    return (f'dry run: {cfg.filename} is ready ({task_of(cfg).name} task, work_dir '
            f'{cfg.work_dir}); nothing was run')
