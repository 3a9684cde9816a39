"""Turn the arguments of ``tools/train.py`` and ``tools/test.py`` into a Runner config.

The arguments are MMPretrain's. The same tools run MMSegmentation configs
(``default_scope = 'mmseg'``): MMEngine's Runner is generic, and only the visualization switch
and the meaning of ``test.py --out`` follow MMSegmentation's tools there.

Without CUDA the config is adapted so that it still runs, on one CPU process or several
(``--launcher pytorch``): SyncBN becomes BN, the process group uses gloo, memory is not
pinned, and ``--amp`` is refused with a clear error.
"""
import os
import os.path as osp
from copy import deepcopy

import torch
from mmengine.config import ConfigDict, DictAction

from .errors import ToolError

SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')


def add_runner_args(parser):
    """Add the arguments ``train.py`` and ``test.py`` share last: config overrides and launcher."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, key=value (a list: key="[a,b]" or key=a,b)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torchrun sets LOCAL_RANK instead).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser, argv=None):
    """Parse ``argv``; a launcher's ``--local-rank`` becomes ``LOCAL_RANK`` for MMEngine."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _scope(cfg):
    return cfg.get('default_scope') or 'mmpretrain'


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
    """Fill MMPretrain's tool defaults into the dataloaders the config has.

    Args:
        cfg (Config): the config, changed in place.
        fields (Sequence[str]): the dataloader fields, e.g. ``('test_dataloader', )``.
        persistent_workers (bool): whether workers persist by default.
        disable (Sequence[str]): options forced off (``--no-pin-memory`` and the like).

    Memory is pinned only for CUDA, and workers persist only when there are workers.
    """
    for field in fields:
        loader = cfg.get(field)
        if loader is None:
            continue
        merged = ConfigDict(pin_memory=True)
        if persistent_workers:
            merged.persistent_workers = True
        if _scope(cfg) == 'mmpretrain':
            # MMPretrain's data preprocessor takes stacked batches; MMSeg keeps pseudo_collate.
            merged.collate_fn = dict(type='default_collate')
        merged.update(loader)
        for option in disable:
            merged[option] = False
        if not torch.cuda.is_available():
            merged.pin_memory = False
        if merged.get('num_workers', 0) == 0 and 'persistent_workers' in merged:
            merged.persistent_workers = False
        cfg[field] = merged


def prepare_train_config(cfg, args):
    """Apply the arguments of ``tools/train.py`` (an ``argparse.Namespace``) to ``cfg``."""
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(args.resume):
            raise ToolError(f'--resume {args.resume}: no such checkpoint; give an existing '
                            'file, or --resume alone to resume from the work dir\'s latest')
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ToolError('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) in '
                            'the config (the batch size its learning rate was tuned for)')
        cfg.auto_scale_lr.enable = True
    disable = [option for option, off in (('pin_memory', args.no_pin_memory),
                                          ('persistent_workers', args.no_persistent_workers))
               if off]
    set_dataloader_defaults(cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'),
                            persistent_workers=True, disable=disable)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return fit_config_to_device(cfg, args.amp)


def _enable_visualization(cfg, args):
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ToolError('--show/--show-dir need a visualization hook in the config: add '
                        "default_hooks.visualization = dict(type='VisualizationHook') "
                        "(MMSeg: 'SegVisualizationHook')")
    hook.update(show=args.show, wait_time=args.wait_time, interval=args.interval)
    if _scope(cfg) == 'mmseg':
        hook.draw = True
        if args.show_dir:
            cfg.visualizer.save_dir = args.show_dir
    else:
        hook.update(enable=True, out_dir=args.show_dir)


def _enable_tta(cfg):
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        if _scope(cfg) != 'mmpretrain':
            raise ToolError('--tta needs tta_model and tta_pipeline in the config')
        cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
        # Flip test-time augmentation: each image as is and mirrored, scores averaged.
        test_pipeline = cfg.test_dataloader.dataset.pipeline
        flip = dict(type='TestTimeAug',
                    transforms=[[dict(type='RandomFlip', prob=1.),
                                 dict(type='RandomFlip', prob=0.)], [test_pipeline[-1]]])
        cfg.setdefault('tta_pipeline', [*deepcopy(test_pipeline[:-1]), flip])
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def prepare_test_config(cfg, args):
    """Apply the arguments of ``tools/test.py`` (an ``argparse.Namespace``) to ``cfg``."""
    if args.out_item is not None and args.out is None:
        raise ToolError('--out-item needs --out (the file to write)')
    if not osp.isfile(args.checkpoint):
        raise ToolError(f'checkpoint {args.checkpoint} does not exist')
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg.fp16 = True
    if args.show or args.show_dir:
        _enable_visualization(cfg, args)
    if args.tta:
        _enable_tta(cfg)
    if args.out and args.out_item != 'metrics' and _scope(cfg) == 'mmseg':
        # MMSeg's test --out: a directory of predicted segmentation maps.
        cfg.test_evaluator.update(output_dir=args.out, keep_results=True)
    set_dataloader_defaults(cfg, ('test_dataloader', ), persistent_workers=False,
                            disable=['pin_memory'] if args.no_pin_memory else [])
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return fit_config_to_device(cfg, args.amp)


def build_runner(cfg):
    """The Runner of ``cfg``: MMEngine's, or the registered ``runner_type``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def run_test(cfg, out=None, out_item=None):
    """Test with ``cfg``'s runner; write predictions or metrics to ``out`` like MMPretrain.

    Returns:
        dict: the metrics.
    """
    import mmengine
    from mmengine.evaluator import DumpResults

    runner = build_runner(cfg)
    if out and out_item in ('pred', None) and _scope(cfg) != 'mmseg':
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    metrics = runner.test()
    if out and out_item == 'metrics':
        mmengine.dump(metrics, out)
    return metrics
