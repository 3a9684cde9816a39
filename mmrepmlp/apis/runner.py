"""Turn the arguments of ``tools/train.py`` and ``tools/test.py`` into a Runner config, and run
the test.

The arguments are MMPretrain's. What differs between tasks (collate, visualization, TTA, what
``test.py --out`` writes) comes from the config's task (:func:`mmrepmlp.tasks.task_of`).

Before any Runner is built, the data paths of the config and the checkpoint are checked, so
that bad input ends with one line naming the problem and the fix. Without CUDA the config is
adapted so that it still runs, on one CPU process or several (``--launcher pytorch``): SyncBN
becomes BN, the process group uses gloo, memory is not pinned, and ``--amp`` is refused.
"""
import os
import os.path as osp

import torch
from mmengine.config import ConfigDict, DictAction

from ..tasks import task_of
from ..utils.errors import ToolError
from ..utils.files import check_not_overwriting, dump
from .build import read_checkpoint, state_dict_mismatch

SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')
TRAIN_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def add_runner_args(parser):
    """Add the arguments ``train.py`` and ``test.py`` share last: config overrides, a dry
    run, and the launcher."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, key=value (a list: key="[a,b]" or key=a,b)')
    parser.add_argument(
        '--dry-run', action='store_true',
        help='check the config, its data paths and the checkpoint, then stop (the '
        'distributed launchers do this once before starting the processes)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torchrun sets LOCAL_RANK instead).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser, argv=None):
    """Parse ``argv``; a launcher's ``--local-rank`` becomes ``LOCAL_RANK`` for MMEngine."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def launcher_rank():
    """This process's rank as the launchers set it (0 without a launcher)."""
    for variable in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(variable, '').isdigit():
            return int(os.environ[variable])
    return 0


def replace_sync_bn(node):
    """Replace every SyncBN norm config in ``node`` (dicts and lists, recursively) by BN."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'type' and (value in SYNC_BN_TYPES or value is torch.nn.SyncBatchNorm):
                node[key] = 'BN'
            else:
                replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            replace_sync_bn(item)
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


def check_data_paths(cfg, loaders):
    """Raise one :class:`ToolError` listing every missing data path of ``loaders``, each with
    the config key to set."""
    missing = {}
    for key, path in task_of(cfg).data_paths(cfg, loaders):
        if not osp.exists(path):
            missing.setdefault(path, []).append(key)
    if missing:
        listed = '; '.join(f'{path} (from {", ".join(keys)})' for path, keys in missing.items())
        keys = sorted({key.split('.')[0] for keys in missing.values() for key in keys})
        hint = ' '.join(f'{key}.dataset.data_root=...' for key in keys)
        raise ToolError(f'missing data: {listed}; put the data set there or point the config '
                        f'at it, e.g. --cfg-options {hint}')


def _pretrained_checkpoints(node, path):
    """``[(config key, checkpoint)]`` of the ``Pretrained`` init configs under ``node``."""
    found = []
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
            found.append((f'{path}.checkpoint', node['checkpoint']))
        for key, value in node.items():
            found += _pretrained_checkpoints(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            found += _pretrained_checkpoints(item, f'{path}[{index}]')
    return found


def check_pretrained_checkpoints(cfg):
    """Raise :class:`ToolError` naming every local pretrained checkpoint of the model that
    does not exist (found only when the weights are initialized, after the Runner starts)."""
    missing = [(key, path) for key, path in _pretrained_checkpoints(cfg.model, 'model')
               if '://' not in path and not osp.isfile(path)]
    if missing:
        listed = '; '.join(f'{path} (from {key})' for key, path in missing)
        raise ToolError(f'missing pretrained checkpoint: {listed}; put the checkpoint there '
                        f'or set --cfg-options {missing[0][0]}=...')


def prepare_train_config(cfg, args):
    """Apply the arguments of ``tools/train.py`` (an ``argparse.Namespace``) to ``cfg``."""
    task_of(cfg).check_available()
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    _set_resume(cfg, args.resume)
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
    check_data_paths(cfg, [f for f in TRAIN_LOADERS if cfg.get(f) and f != 'test_dataloader'])
    check_pretrained_checkpoints(cfg)  # MMEngine initializes weights before resuming too
    return cfg


def _set_resume(cfg, resume):
    if resume is None:
        return
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
        latest = osp.join(cfg.work_dir, 'last_checkpoint')
        if osp.isfile(latest):  # MMEngine resumes from the file it names
            with open(latest) as f:
                check_resumable(f.read().strip(), '--resume (the latest checkpoint)')
        return
    if '://' not in resume:
        if not osp.isfile(resume):
            raise ToolError(f'--resume {resume}: the checkpoint does not exist; give an '
                            "existing file, or --resume alone to resume from the work dir's "
                            'latest')
        check_resumable(resume, f'--resume {resume}')
    cfg.resume, cfg.load_from = True, resume


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


def prepare_test_config(cfg, args):
    """Apply the arguments of ``tools/test.py`` (an ``argparse.Namespace``) to ``cfg``.

    Returns:
        TestOutput: what the task needs to write ``--out`` (see :func:`run_test`).
    """
    task = task_of(cfg)
    task.check_available()
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
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
    return task.prepare_test_output(cfg, args.out, args.out_item) if args.out else None


def dry_run_summary(cfg):
    """The line ``--dry-run`` prints: what would run."""
    return (f'dry run: {cfg.filename} is ready ({task_of(cfg).name} task, work_dir '
            f'{cfg.work_dir}); nothing was run')


def build_runner(cfg):
    """The Runner of ``cfg``: MMEngine's, or the registered ``runner_type``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


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


def run_test(cfg, checkpoint, out=None, out_item=None, test_output=None, strict=True,
             optimize=False):
    """Test ``checkpoint`` with ``cfg``'s runner; write predictions or metrics to ``out``.

    Args:
        cfg (Config): the config from :func:`prepare_test_config`.
        checkpoint (str): the weights, loaded strictly unless ``strict`` is False.
        out (str, optional): ``--out``.
        out_item (str, optional): ``'metrics'`` or ``'pred'`` (the default).
        test_output (TestOutput, optional): what :func:`prepare_test_config` returned.
        strict (bool): refuse a checkpoint that does not fit the model.
        optimize (bool): load the checkpoint, then test the model as
            :func:`~mmrepmlp.apis.inference.optimize_for_inference` makes it (deploy form,
            compiled).

    Returns:
        dict: the metrics.

    Raises:
        ToolError: the checkpoint does not fit, or a metric is not finite.
    """
    runner = build_runner(cfg)
    check_checkpoint_fits(runner, checkpoint, strict)
    if optimize:
        _optimize_runner_model(runner, checkpoint)
    if test_output is not None:
        runner.test_evaluator.metrics.extend(test_output.metrics)
    succeeded = False
    try:
        metrics = runner.test()
        _check_finite(metrics)
        if out and out_item == 'metrics':
            dump(metrics, out)
        succeeded = True
    finally:
        if test_output is not None:
            test_output.commit(succeeded)
    return metrics


def _optimize_runner_model(runner, checkpoint):
    """Load ``checkpoint`` into the Runner's model and put its optimized copy in its place.

    The test loop needs no DDP wrapper (it calls ``test_step``); a test-time augmentation
    wrapper is kept, around the optimized model.
    """
    from mmengine.model import BaseTTAModel, is_model_wrapper

    from .inference import optimize_for_inference

    runner.load_checkpoint(checkpoint, map_location='cpu')  # test() then loads nothing
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    log = runner.logger.info
    if isinstance(model, BaseTTAModel):
        model.module = optimize_for_inference(model.module.eval(), log=log)
    else:
        model = optimize_for_inference(model.eval(), log=log)
    runner.model = model


def _check_finite(metrics):
    import math
    import numbers

    bad = [name for name, value in (metrics or {}).items()
           if isinstance(value, numbers.Number) and not math.isfinite(float(value))]
    if bad:
        raise ToolError(f'the test gave non-finite metrics ({", ".join(bad)}); the model '
                        'outputs NaN or inf: check the checkpoint (e.g. with '
                        'tools/deploy_convert.py, which names non-finite weights)')
