"""Test (and evaluate) a checkpoint with MMEngine's Runner (MMPretrain's arguments).

Works for every task's configs (classification, segmentation, face recognition),
training-time and deploy configs alike, on GPUs and on CPUs. The checkpoint must fit the
model (``--non-strict`` tests what fits). For segmentation configs ``--out`` is a folder of
predicted maps, as in MMSegmentation's own tool. ``--optimize`` tests the model in its
fastest exact inference form (:func:`mmrepmlp.deployment.optimize_for_inference`).

Example::

    python tools/test.py configs/repmlp_res50_g8_in1k.py ckpt.pth --out metrics.json \\
        --out-item metrics
"""
import argparse

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis import (
    add_runner_args,
    dry_run_summary,
    load_config,
    parse_runner_args,
    prepare_test_config,
    run_test,
)
from mmrepmlp.apis.cli import tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model.')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory for the metrics file and logs')
    parser.add_argument('--out', help='the file to write the predictions or metrics to (for '
                        'segmentation: the folder of predicted maps)')
    parser.add_argument('--out-item', choices=['metrics', 'pred'],
                        help='what --out holds (default: predictions)')
    parser.add_argument('--amp', action='store_true',
                        help='test in mixed precision (needs a CUDA GPU)')
    parser.add_argument('--show-dir', help='save the visualized predictions here')
    parser.add_argument('--show', action='store_true', help='show the predictions in a window')
    parser.add_argument('--interval', type=int, default=1, help='visualize every N samples')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each --show window stays')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in the dataloader')
    parser.add_argument(
        '--tta', action='store_true',
        help="test-time augmentation: the config's tta_model and tta_pipeline, or (for "
        'classifiers without them) flip TTA averaging the scores')
    parser.add_argument('--optimize', action='store_true',
                        help='test the model as optimize_for_inference makes it (deploy form, '
                        'channels_last, torch.compile): the same metrics, faster; the first '
                        'batches compile')
    parser.add_argument('--non-strict', action='store_true',
                        help='test a checkpoint that does not fit the model (missing, '
                        'unexpected or reshaped keys are named and left as initialized)')
    add_runner_args(parser)
    return parse_runner_args(parser, argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    test_output = prepare_test_config(cfg, args)
    if args.dry_run:
        print(dry_run_summary(cfg))
        return
    run_test(cfg, args.checkpoint, args.out, args.out_item, test_output,
             strict=not args.non_strict, optimize=args.optimize)


if __name__ == '__main__':
    main()
