"""Quick start (``make demo``): train RepMLP's pure-MLP model on scikit-learn's bundled digits on
the CPU, convert it to the deploy form, and print accuracy, output difference, params, FLOPs
and speed of both forms. Exits 1 when the forms disagree or accuracy is below the bar.

Example::

    python tools/quick_start.py --epochs 3 --work-dir work_dirs/quick_start
"""
import argparse
import sys

import mmrepmlp  # noqa: F401  (compat fixes and registries)
from mmrepmlp.apis.quick_start import (
    DEFAULT_EPOCHS,
    DEFAULT_WORK_DIR,
    MIN_ACCURACY,
    format_report,
    run_quick_start,
)


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=positive_int, default=DEFAULT_EPOCHS,
                        help=f'training epochs (default {DEFAULT_EPOCHS})')
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR,
                        help=f'logs, checkpoints and the plot (default {DEFAULT_WORK_DIR})')
    parser.add_argument('--min-accuracy', type=float, default=MIN_ACCURACY,
                        help=f'fail below this held-out top-1 in %% (default {MIN_ACCURACY})')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = run_quick_start(epochs=args.epochs, work_dir=args.work_dir)
    print(format_report(result))
    if not result.passed(args.min_accuracy):
        sys.exit(f'FAILED: deploy accuracy {result.deploy_accuracy:.2f}% (train-time '
                 f'{result.train_accuracy:.2f}%) must equal the train-time accuracy and reach '
                 f'{args.min_accuracy}%; train longer with --epochs')


if __name__ == '__main__':
    main()
