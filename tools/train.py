"""Train a model from a config with MMEngine's Runner (MMPretrain's arguments).

Works for MMPretrain and MMSegmentation configs, on GPUs and on CPUs (one process, or several
with ``--launcher pytorch`` through ``tools/dist_train.sh``, using gloo).

Example::

    python tools/train.py configs/repmlp_res50_g8_in1k.py --work-dir work_dirs/r50
    tools/dist_train.sh configs/repmlp_res50_g8_in1k.py 8 --resume
"""
import argparse
import sys

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis import (
    add_runner_args,
    check_load_from_fits,
    check_resume_fits,
    dry_run_summary,
    load_config,
    parse_runner_args,
    prepare_train_config,
    remove_partial_saves,
)
from mmrepmlp.apis.cli import Interrupted, launcher_rank, tool_main
from mmrepmlp.apis.config import batch_size_warning
from mmrepmlp.apis.run import build_checked_runner, checkpoints_left


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model.')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the directory for logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or alone: from the latest checkpoint of the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (needs a CUDA GPU)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help="scale the learning rate by the actual batch size / the config's "
        'auto_scale_lr.base_batch_size')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in the dataloaders')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='disable persistent_workers in the dataloaders')
    parser.add_argument('--non-strict', action='store_true',
                        help='start from what fits of a load_from checkpoint of another model '
                        '(missing, unexpected or reshaped keys are named and left initialized)')
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    cfg = prepare_train_config(load_config(args.config), args)
    if args.dry_run:
        print(dry_run_summary(cfg))
        return
    warning = batch_size_warning(cfg)
    if launcher_rank() == 0:  # the rank that saves checkpoints, before it saves any
        if warning:
            print(warning, file=sys.stderr)
        remove_partial_saves(cfg.work_dir)

    def check(runner):
        check_resume_fits(runner, cfg)
        check_load_from_fits(runner, cfg, strict=not args.non_strict)

    runner = build_checked_runner(cfg, check)
    try:
        runner.train()
    except KeyboardInterrupt:
        raise Interrupted(checkpoints_left(cfg.work_dir)) from None


if __name__ == '__main__':
    main()
